{{/* The release's name for every object, at most 63 characters. */}}
{{- define "tide.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tide.labels" -}}
app.kubernetes.io/name: tide
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "tide.selector" -}}
app.kubernetes.io/name: tide
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "tide.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tide.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* `<prefix>/<name>:<tag>`, the tag defaulting to the appVersion. */}}
{{- define "tide.image" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- printf "%s/%s:%s" $root.Values.image.prefix $name (default $root.Chart.AppVersion $root.Values.image.tag) -}}
{{- end -}}
