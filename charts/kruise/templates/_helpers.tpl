{{/* Common labels. */}}
{{- define "kruise.labels" -}}
app.kubernetes.io/name: kruise
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kruise.image" -}}
{{ .Values.manager.image.repository }}:{{ .Values.manager.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Where the manager and its namespaced objects go: installation.namespace (as upstream's
  chart names it), else the release namespace. */}}
{{- define "kruise.namespace" -}}
{{- .Values.installation.namespace | default .Release.Namespace -}}
{{- end -}}

{{/* Namespaces the pod webhook must never see: kube-system, the manager's namespace, extras. */}}
{{- define "kruise.excludedNamespaces" -}}
{{- $all := list "kube-system" (include "kruise.namespace" .) -}}
{{- range .Values.webhook.excludeNamespaces }}{{ $all = append $all . }}{{ end -}}
{{- toJson (uniq $all) -}}
{{- end -}}

{{/* Refuse values the schema cannot express. */}}
{{- define "kruise.validate" -}}
{{- $ru := .Values.manager.updateStrategy.rollingUpdate -}}
{{- $surge := toString $ru.maxSurge | trimSuffix "%" -}}
{{- $unavailable := toString $ru.maxUnavailable | trimSuffix "%" -}}
{{- if and (eq $surge "0") (eq $unavailable "0") -}}
{{- fail "manager.updateStrategy.rollingUpdate: maxSurge and maxUnavailable cannot both be 0 (the rollout could never progress)" -}}
{{- end -}}
{{- end -}}
