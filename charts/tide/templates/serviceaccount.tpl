{{- if .Values.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "tide.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "tide.labels" . | nindent 4 }}
{{- end }}
