{{- if .Values.csi.enabled }}
{{- $driver := .Values.runtime.csiDriver }}
{{- $kubeletDir := .Values.csi.kubeletDir | trimSuffix "/" }}
{{- $name := printf "%s-csi" (include "tide.fullname" .) }}
# The CSI driver the PersistentVolumes name: no attach step, the pod's identity in the volume
# context, and never a chown of a dataset by the kubelet (fsGroupPolicy None).
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata:
  name: {{ $driver }}
  labels:
    {{- include "tide.labels" . | nindent 4 }}
spec:
  attachRequired: false
  podInfoOnMount: true
  fsGroupPolicy: None
  volumeLifecycleModes: [Persistent]
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $name }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "tide.labels" . | nindent 4 }}
{{- if .Values.rbac.create }}
---
# What the node plugin does: set and remove the lazy-FUSE label on its node (RBAC cannot narrow
# this to the pod's own node; the plugin patches only the node named by NODE_NAME), read whether a
# dataset exists, write FuseRecover events, read a PersistentVolume's attributes at unstage after a
# restart, and compare its node's FUSE pod with the DaemonSet (cleanPolicy OnFuseChanged).
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ $name }}
  labels:
    {{- include "tide.labels" . | nindent 4 }}
rules:
  - apiGroups: ['']
    resources: [nodes]
    verbs: [patch]
  - apiGroups: [data.fluid.io]
    resources: [datasets]
    verbs: [get]
  - apiGroups: ['']
    resources: [events]
    verbs: [create]
  - apiGroups: ['']
    resources: [persistentvolumes]
    verbs: [get]
  - apiGroups: [apps]
    resources: [daemonsets]
    verbs: [get]
  - apiGroups: ['']
    resources: [pods]
    verbs: [list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ $name }}
  labels:
    {{- include "tide.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ $name }}
subjects:
  - kind: ServiceAccount
    name: {{ $name }}
    namespace: {{ .Release.Namespace }}
{{- end }}
---
# The node plugin (src/csi/main.ts) on every node: it registers itself with the kubelet through
# <kubelet-dir>/plugins_registry (no node-driver-registrar) and serves CSI on its own socket.
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ $name }}-nodeplugin
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "tide.labels" . | nindent 4 }}
    app.kubernetes.io/component: csi-nodeplugin
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: tide
      app.kubernetes.io/instance: {{ .Release.Name }}
      app.kubernetes.io/component: csi-nodeplugin
  updateStrategy:
    type: RollingUpdate
  template:
    metadata:
      labels:
        app.kubernetes.io/name: tide
        app.kubernetes.io/instance: {{ .Release.Name }}
        app.kubernetes.io/component: csi-nodeplugin
    spec:
      serviceAccountName: {{ $name }}
      {{- with .Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      # Node agents reach the API server without kube-proxy; the kubelet dials the sockets.
      hostNetwork: true
      dnsPolicy: ClusterFirstWithHostNet
      {{- with .Values.csi.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      terminationGracePeriodSeconds: 10
      containers:
        - name: plugin
          image: {{ include "tide.image" (list . .Values.csi.image) | quote }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          workingDir: /opt/tide
          command: [node, src/csi/main.ts]
          args:
            - --endpoint=unix://{{ $kubeletDir }}/plugins/{{ $driver }}/csi.sock
            - --node-id=$(NODE_NAME)
            - --driver-name={{ $driver }}
            - --kubelet-dir={{ $kubeletDir }}
            - --mount-root={{ .Values.runtime.mountRoot }}
            - --registration-dir={{ $kubeletDir }}/plugins_registry
            - --recovery-interval-seconds={{ .Values.csi.recoveryIntervalSeconds }}
            - --fuse-timeout-seconds={{ .Values.csi.fuseTimeoutSeconds }}
            - --log-level={{ .Values.csi.logLevel }}
          env:
            - name: NODE_NAME
              valueFrom:
                fieldRef:
                  fieldPath: spec.nodeName
            {{- with .Values.csi.apiServer.host }}
            - name: KUBERNETES_SERVICE_HOST
              value: {{ . | quote }}
            {{- end }}
            {{- with .Values.csi.apiServer.port }}
            - name: KUBERNETES_SERVICE_PORT
              value: {{ . | quote }}
            {{- end }}
          # mount(2) for the bind mounts, which must reach the host (Bidirectional).
          securityContext:
            privileged: true
          resources:
            {{- toYaml .Values.csi.resources | nindent 12 }}
          volumeMounts:
            # Pods' targets, the staging paths, the registration and CSI sockets, the plugin's state.
            - name: kubelet-dir
              mountPath: {{ $kubeletDir }}
              mountPropagation: Bidirectional
            # The FUSE pods' mounts (fluid_path); Bidirectional so that unmounting a broken one
            # (ENOTCONN) at NodeStageVolume reaches the host.
            - name: mount-root
              mountPath: {{ .Values.runtime.mountRoot }}
              mountPropagation: Bidirectional
      volumes:
        - name: kubelet-dir
          hostPath:
            path: {{ $kubeletDir }}
            type: Directory
        - name: mount-root
          hostPath:
            path: {{ .Values.runtime.mountRoot }}
            type: DirectoryOrCreate
      {{- with .Values.csi.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.csi.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
