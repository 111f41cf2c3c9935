{{- if .Values.webhook.enabled }}
{{- $service := printf "%s-webhook" (include "tide.fullname" .) }}
{{- $secret := printf "%s-webhook-certs" (include "tide.fullname" .) }}
# The pod admission webhook, served by every controller replica on port {{ .Values.webhook.port }}.
apiVersion: v1
kind: Service
metadata:
  name: {{ $service }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "tide.labels" . | nindent 4 }}
spec:
  selector:
    {{- include "tide.selector" . | nindent 4 }}
  ports:
    - name: webhook
      port: 443
      targetPort: webhook
      protocol: TCP
---
# Fluid's `webhook-plugins` ConfigMap: the plugin chains and their arguments (Fluid's format).
apiVersion: v1
kind: ConfigMap
metadata:
  name: webhook-plugins
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "tide.labels" . | nindent 4 }}
data:
  pluginsProfile: |
    {{- .Values.webhook.pluginsProfile | nindent 4 }}
---
# As src/webhook/configuration.ts writes it. Only pods labelled for Fluid's webhook are sent, and
# never those of kube-system or of this release's namespace: a webhook that is down blocks nothing else.
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: {{ include "tide.fullname" . }}-pod-admission-webhook
  labels:
    {{- include "tide.labels" . | nindent 4 }}
  {{- if eq .Values.webhook.certificates "cert-manager" }}
  annotations:
    cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/{{ $service }}
  {{- end }}
webhooks:
  {{- range $entry := list (list "sidecar.fuse.fluid.io" "serverless.fluid.io/inject") (list "fuse.serverful.fluid.io" "fuse.serverful.fluid.io/inject") }}
  - name: {{ index $entry 0 }}
    rules:
      - apiGroups: ['']
        apiVersions: [v1]
        operations: [CREATE]
        resources: [pods]
    clientConfig:
      service:
        namespace: {{ $.Release.Namespace }}
        name: {{ $service }}
        path: /mutate-fluid-io-v1alpha1-schedulepod
        port: 443
    timeoutSeconds: {{ $.Values.webhook.timeoutSeconds }}
    failurePolicy: Fail
    reinvocationPolicy: IfNeeded
    sideEffects: None
    admissionReviewVersions: [v1, v1beta1]
    namespaceSelector:
      matchExpressions:
        - key: kubernetes.io/metadata.name
          operator: NotIn
          values: [kube-system, {{ $.Release.Namespace }}]
    objectSelector:
      matchLabels:
        {{ index $entry 1 }}: 'true'
  {{- end }}
{{- if eq .Values.webhook.certificates "cert-manager" }}
---
apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: {{ $service }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "tide.labels" . | nindent 4 }}
spec:
  selfSigned: {}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: {{ $service }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "tide.labels" . | nindent 4 }}
spec:
  secretName: {{ $secret }}
  issuerRef:
    name: {{ $service }}
  dnsNames:
    - {{ $service }}.{{ .Release.Namespace }}.svc
    - {{ $service }}.{{ .Release.Namespace }}.svc.cluster.local
{{- end }}
{{- end }}
