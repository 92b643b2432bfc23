{{/* Chart name, truncated to the 63 characters of a label value. */}}
{{- define "aks-scaler.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects. A release whose name already contains the chart name is not repeated.
Kept to 52 characters so that suffixes ("-leader-election", "-metrics") stay within 63.
*/}}
{{- define "aks-scaler.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "aks-scaler.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "aks-scaler.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aks-scaler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "aks-scaler.labels" -}}
helm.sh/chart: {{ include "aks-scaler.chart" . }}
{{ include "aks-scaler.selectorLabels" . }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: azure-pipelines-k8s-agent-scaler
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "aks-scaler.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "aks-scaler.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "aks-scaler.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "aks-scaler.leaseName" -}}
{{- default (include "aks-scaler.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
"true" when the operator labels the leader's pod and the hooks Service selects it: service hooks on, more than one
replica (a delivery to a standby replica would trigger nothing; only the leader polls).
*/}}
{{- define "aks-scaler.leaderPodLabel" -}}
{{- if and .Values.serviceHooks.enabled (gt (int .Values.replicaCount) 1) .Values.leaderElection.enabled -}}
true
{{- end -}}
{{- end }}

{{/*
What the operator does in a watched namespace (or cluster-wide), and nothing more. Keep in sync with
config/rbac/role.yaml and config/rbac/namespaced/role.yaml.
*/}}
{{- define "aks-scaler.managerRules" -}}
# Watch the resources, keep their finalizer and report their status.
- apiGroups: ["azurepipelines.k8s.scaler.io"]
  resources: ["autoscaledagents"]
  verbs: ["get", "list", "watch", "patch"]
# Its finalizer (unregister agents before a resource goes).
- apiGroups: ["azurepipelines.k8s.scaler.io"]
  resources: ["autoscaledagents/finalizers"]
  verbs: ["update"]
- apiGroups: ["azurepipelines.k8s.scaler.io"]
  resources: ["autoscaledagents/status"]
  verbs: ["get", "patch", "update"]
# Agent pods: create, stop sidecars (patch), delete finished or superfluous ones.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "create", "delete", "patch"]
# The personal access tokens named by the AutoScaledAgents (read, never listed or watched).
- apiGroups: [""]
  resources: ["secrets"]
  {{- with .Values.rbac.patSecretNames }}
  resourceNames: {{ toJson . }}
  {{- end }}
  verbs: ["get"]
# Reusable cache volumes.
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
# Predictive standby: one job-history ConfigMap per AutoScaledAgent that uses it (read, created, replaced).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create", "update"]
# Events on AutoScaledAgents and pods.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.imagePrePull.enabled }}
# Image pre-pull DaemonSets (imagePrePull.enabled).
- apiGroups: ["apps"]
  resources: ["daemonsets"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
{{- end }}
{{- end }}
