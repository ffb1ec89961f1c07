{{/* The object name: fullnameOverride, else the release name if it contains the chart name, else <release>-<chart>. */}}
{{- define "infergate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "infergate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The pods' selector labels. */}}
{{- define "infergate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "infergate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "infergate.labels" -}}
{{ include "infergate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The Service's in-cluster name. */}}
{{- define "infergate.fqdn" -}}
{{ include "infergate.fullname" . }}.{{ .Release.Namespace }}.svc.cluster.local
{{- end -}}

{{/* The RBAC rules: read every kind the Kubernetes source watches, and the Pods and Services;
patch only the status of the Inference Extension's kinds. */}}
{{- define "infergate.rules" -}}
- apiGroups: [inference.networking.x-k8s.io, inference.networking.k8s.io]
  resources: [inferencepools, inferencemodels, inferenceobjectives, inferencemodelrewrites]
  verbs: [get, list, watch]
- apiGroups: [inference.networking.x-k8s.io, inference.networking.k8s.io]
  resources: [inferencepools/status, inferencemodels/status, inferenceobjectives/status, inferencemodelrewrites/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [pods, services]
  verbs: [get, list, watch]
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes, referencegrants]
  verbs: [get, list, watch]
{{- end -}}

{{/* The InfergateConfig document the server reads with --scheduler-config. */}}
{{- define "infergate.schedulerConfig" -}}
apiVersion: infergate.io/v1alpha1
kind: InfergateConfig
metadata: {name: {{ include "infergate.fullname" . }}}
spec:
  {{- toYaml (default dict .Values.scheduler) | nindent 2 }}
{{- end -}}

{{/* Envoy Gateway's extensionManager for this release: the value of config.envoyGateway.extensionManager
in Envoy Gateway's Helm values (or extensionManager in its envoy-gateway-config ConfigMap). */}}
{{- define "infergate.extensionManager" -}}
hooks:
  xdsTranslator:
    # HTTPListener: the filter on listeners an InferencePool's attach-to names (and upgrades
    #   an EnvoyExtensionPolicy's Wasm filter with rootID "infergate" to the ECDS feed).
    # Route: the route to a v1 InferencePool whose endpointPickerRef names a picker calls it
    #   over ext_proc (the HTTPListener hook adds that filter too).
    # Cluster: an HTTPRoute backendRef to an InferencePool becomes EDS + override_host.
    # Translation: adds the cluster Envoy downloads the filter module through, and the
    #   endpoint pickers' clusters.
    post: [HTTPListener, Route, Cluster, Translation]
backendResources:
- {group: inference.networking.x-k8s.io, version: v1alpha1, kind: InferencePool}
- {group: inference.networking.x-k8s.io, version: v1alpha2, kind: InferencePool}
- {group: inference.networking.k8s.io, version: v1, kind: InferencePool}
service:
  fqdn: {hostname: {{ include "infergate.fqdn" . }}, port: {{ .Values.ports.hooks }}}
  {{- if .Values.tls.enabled }}
  # Mutual TLS to the hooks: Envoy Gateway verifies infergate with the CA in Secret
  # {{ .Values.envoyGateway.caSecretName }} (key tls.crt), and presents its own certificate (its
  # `{{ .Values.envoyGateway.clientSecretName }}` Secret, signed by the CA in infergate's client-ca.crt).
  tls:
    certificateRef: {name: {{ .Values.envoyGateway.caSecretName }}, namespace: {{ .Values.envoyGateway.namespace }}}
    clientCertificateRef: {name: {{ .Values.envoyGateway.clientSecretName }}, namespace: {{ .Values.envoyGateway.namespace }}}
  {{- end }}
# failOpen false: if a hook fails, Envoy Gateway does not push a new snapshot and Envoy keeps
# its last good configuration (routing continues). With true, the unmodified resources would
# be pushed: listeners without the filter, pool clusters without endpoints.
failOpen: {{ .Values.envoyGateway.failOpen }}
{{- end -}}
