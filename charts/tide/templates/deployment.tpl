apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "tide.fullname" . }}-controller
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "tide.labels" . | nindent 4 }}
    app.kubernetes.io/component: controller
spec:
  replicas: {{ .Values.controller.replicas }}
  selector:
    matchLabels:
      {{- include "tide.selector" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "tide.selector" . | nindent 8 }}
      {{- with .Values.controller.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      serviceAccountName: {{ include "tide.serviceAccountName" . }}
      {{- with .Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        seccompProfile:
          type: RuntimeDefault
      # On SIGTERM the operator stops its reconcilers and releases the Lease.
      terminationGracePeriodSeconds: 30
      containers:
        - name: controller
          image: {{ include "tide.image" (list . .Values.image.controller) | quote }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          workingDir: /opt/tide
          command: [node, src/operator/main.ts]
          args:
            {{- if .Values.controller.leaderElection.enabled }}
            - --leader-election-namespace={{ .Release.Namespace }}
            - --lease-name={{ .Values.controller.leaderElection.leaseName }}
            - --lease-duration={{ .Values.controller.leaderElection.leaseDurationSeconds }}
            - --renew-deadline={{ .Values.controller.leaderElection.renewDeadlineSeconds }}
            - --retry-period={{ .Values.controller.leaderElection.retryPeriodSeconds }}
            {{- else }}
            - --no-leader-elect
            {{- end }}
            {{- if .Values.controller.installCrds }}
            - --install-crds
            {{- end }}
            {{- if not .Values.cronHpa.enabled }}
            - --no-cronhpa
            {{- end }}
            - --worker-image={{ include "tide.image" (list . .Values.image.worker) }}
            - --fuse-image={{ include "tide.image" (list . .Values.image.fuse) }}
            - --loader-image={{ include "tide.image" (list . .Values.image.loader) }}
            - --image-pull-policy={{ .Values.image.pullPolicy }}
            - --csi-driver={{ .Values.runtime.csiDriver }}
            - --mount-root={{ .Values.runtime.mountRoot }}
            - --worker-port={{ .Values.runtime.workerPort }}
            - --storage-class={{ .Values.runtime.storageClassName }}
            - --resync-seconds={{ .Values.controller.resyncSeconds }}
            - --log-level={{ .Values.controller.logLevel }}
            {{- if .Values.webhook.enabled }}
            - --webhook
            - --webhook-port={{ .Values.webhook.port }}
            - --webhook-namespace={{ .Release.Namespace }}
            - --webhook-service={{ include "tide.fullname" . }}-webhook
            - --webhook-secret={{ include "tide.fullname" . }}-webhook-certs
            - --webhook-configuration={{ include "tide.fullname" . }}-pod-admission-webhook
            - --webhook-certificates={{ .Values.webhook.certificates }}
            - --webhook-plugins-profile=/etc/tide-webhook/pluginsProfile
          ports:
            - name: webhook
              containerPort: {{ .Values.webhook.port }}
              protocol: TCP
          readinessProbe:
            httpGet:
              path: /healthz
              port: webhook
              scheme: HTTPS
          volumeMounts:
            - name: webhook-plugins
              mountPath: /etc/tide-webhook
              readOnly: true
            {{- end }}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: [ALL]
          resources:
            {{- toYaml .Values.controller.resources | nindent 12 }}
      {{- if .Values.webhook.enabled }}
      volumes:
        - name: webhook-plugins
          configMap:
            name: webhook-plugins
      {{- end }}
      {{- with .Values.controller.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.controller.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.controller.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
