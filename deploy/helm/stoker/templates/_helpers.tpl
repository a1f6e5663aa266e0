{{/* Chart name, truncated to 63 characters. */}}
{{- define "stoker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name; release name and chart name are not repeated when one contains the other. */}}
{{- define "stoker.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "stoker.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "stoker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels for one component: include "stoker.selectorLabels" (list . "agent") */}}
{{- define "stoker.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "stoker.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Image reference for one component: include "stoker.image" (list . .Values.agent.image) */}}
{{- define "stoker.image" -}}
{{- $root := index . 0 -}}
{{- $img := index . 1 -}}
{{- $tag := default $root.Chart.AppVersion $root.Values.image.tag -}}
{{- if $root.Values.image.registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" $root.Values.image.registry) $img.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" $img.repository $tag -}}
{{- end -}}
{{- end }}

{{- define "stoker.agentSecretName" -}}
{{- default (printf "%s-agent-tls" (include "stoker.fullname" .)) .Values.tls.agentSecretName }}
{{- end }}

{{- define "stoker.controllerSecretName" -}}
{{- default (printf "%s-controller-tls" (include "stoker.fullname" .)) .Values.tls.controllerSecretName }}
{{- end }}

{{- define "stoker.agentServiceAccount" -}}
{{- printf "%s-agent" (include "stoker.fullname" .) }}
{{- end }}

{{- define "stoker.controllerServiceAccount" -}}
{{- printf "%s-controller" (include "stoker.fullname" .) }}
{{- end }}

{{/* The namespaces whose Warmups the controller serves, comma-separated (default: the release namespace). */}}
{{- define "stoker.warmupNamespaces" -}}
{{- $list := .Values.controller.warmupNamespaces | default (list .Release.Namespace) -}}
{{- join "," ($list | uniq) -}}
{{- end }}
