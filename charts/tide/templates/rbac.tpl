{{- if .Values.rbac.create }}
# What the operator does, and no more: it reads and writes Tide's resources and their status, reads
# the Secrets datasets name, writes Events, runs each runtime as a StatefulSet, a headless Service, a
# FUSE DaemonSet, a PersistentVolume and claim, a config Secret, a versions ConfigMap and a
# ServiceAccount with a Role that lets FUSE and loader pods read the workers' EndpointSlices and
# that ConfigMap (which it must hold itself to grant),
# runs DataLoads as Jobs, labels nodes, and reads pods (readiness, users of a dataset, datasets per
# node); the webhook keeps its certificate Secret and the caBundle of its configuration.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ include "tide.fullname" . }}
  labels:
    {{- include "tide.labels" . | nindent 4 }}
rules:
  - apiGroups: [data.fluid.io]
    resources: [datasets, dataloads, tideruntimes, alluxioruntimes, jindoruntimes, goosefsruntimes]
    verbs: [get, list, watch, update, delete]
  - apiGroups: [data.fluid.io]
    resources:
      - datasets/status
      - dataloads/status
      - tideruntimes/status
      - alluxioruntimes/status
      - jindoruntimes/status
      - goosefsruntimes/status
    verbs: [get, update]
  # Owner references with blockOwnerDeletion (runtime → dataset) need this where
  # OwnerReferencesPermissionEnforcement is on.
  - apiGroups: [data.fluid.io]
    resources: [datasets/finalizers]
    verbs: [update]
  {{- if .Values.cronHpa.enabled }}
  # CronHPAs: their jobs' conditions, and the HPAs they target (min/max). update on the objects
  # themselves: kubernetes-cronhpa-controller's CRD, where it is kept, has no status subresource.
  - apiGroups: [autoscaling.alibabacloud.com]
    resources: [cronhorizontalpodautoscalers]
    verbs: [get, list, watch, update]
  - apiGroups: [autoscaling.alibabacloud.com]
    resources: [cronhorizontalpodautoscalers/status]
    verbs: [get, update]
  - apiGroups: [autoscaling]
    resources: [horizontalpodautoscalers]
    verbs: [get, update]
  {{- end }}
  # update: the webhook's certificate Secret, renewed with a resourceVersion precondition.
  - apiGroups: ['']
    resources: [secrets]
    verbs: [get, list, watch, create, update, patch, delete]
  # The ConfigMap of each runtime's DataLoad versions (loader writes, FUSE pods watch: granted on).
  - apiGroups: ['']
    resources: [configmaps]
    verbs: [get, list, watch, create, patch, delete]
  - apiGroups: ['']
    resources: [events]
    verbs: [create, patch]
  - apiGroups: ['']
    resources: [pods]
    verbs: [get, list]
  - apiGroups: ['']
    resources: [services, serviceaccounts]
    verbs: [get, create, patch, delete]
  - apiGroups: ['']
    resources: [persistentvolumes, persistentvolumeclaims]
    verbs: [get, create, patch, delete]
  - apiGroups: ['']
    resources: [nodes]
    verbs: [get, list, patch]
  - apiGroups: [apps]
    resources: [statefulsets, daemonsets]
    verbs: [get, create, patch, delete]
  - apiGroups: [batch]
    resources: [jobs]
    verbs: [get, list, create, delete]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [get, list, watch]
  - apiGroups: [rbac.authorization.k8s.io]
    resources: [roles, rolebindings]
    verbs: [get, create, patch, delete]
  {{- if .Values.webhook.enabled }}
  # The webhook keeps its CA in the caBundle of its configuration.
  - apiGroups: [admissionregistration.k8s.io]
    resources: [mutatingwebhookconfigurations]
    verbs: [get, patch]
  {{- end }}
  {{- if .Values.controller.installCrds }}
  - apiGroups: [apiextensions.k8s.io]
    resources: [customresourcedefinitions]
    verbs: [get, create, patch]
  {{- end }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ include "tide.fullname" . }}
  labels:
    {{- include "tide.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ include "tide.fullname" . }}
subjects:
  - kind: ServiceAccount
    name: {{ include "tide.serviceAccountName" . }}
    namespace: {{ .Release.Namespace }}
{{- if .Values.controller.leaderElection.enabled }}
---
# The leader election Lease, in the release namespace only.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ include "tide.fullname" . }}-leader-election
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "tide.labels" . | nindent 4 }}
rules:
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [get, create, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ include "tide.fullname" . }}-leader-election
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "tide.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ include "tide.fullname" . }}-leader-election
subjects:
  - kind: ServiceAccount
    name: {{ include "tide.serviceAccountName" . }}
    namespace: {{ .Release.Namespace }}
{{- end }}
{{- end }}
