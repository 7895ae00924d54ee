{{/*
Names. Kubernetes names and label values stop at 63 characters.
*/}}
{{- define "guardline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "guardline.fullname" -}}
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

{{/* The full name with a suffix, (dict "root" $ "suffix" "reeval-worker"): the full name
is shortened rather than the suffix, so names stay distinct. */}}
{{- define "guardline.componentName" -}}
{{- $room := sub 62 (len .suffix) | int -}}
{{- printf "%s-%s" (include "guardline.fullname" .root | trunc $room | trimSuffix "-") .suffix -}}
{{- end -}}

{{- define "guardline.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels: (dict "root" $ "component" "proxy"). Selector labels never change across upgrades
(name, instance, component); the others may.
*/}}
{{- define "guardline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "guardline.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "guardline.labels" -}}
{{ include "guardline.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: guardline
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ include "guardline.chart" .root }}
{{- end -}}

{{- define "guardline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "guardline.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "guardline.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Where the pods find things; the settings below point Guardline at them. */}}
{{- define "guardline.configDir" -}}/etc/guardline{{- end -}}
{{- define "guardline.configFile" -}}/etc/guardline/guardline.yaml{{- end -}}
{{- define "guardline.dataDir" -}}/var/lib/guardline{{- end -}}

{{/*
Seconds Guardline may take to stop after SIGTERM: `serve --workers N` kills workers still
running after guardline.workers.KILL_AFTER (45 s; a single process gives in-flight requests
30 s). tests/test_chart.py checks this against the code.
*/}}
{{- define "guardline.shutdownSeconds" -}}45{{- end -}}

{{/*
The settings file: chart-managed keys (data directories, kafka.*, otlp.*), then .Values.config
over them, then host/port, which must match the container port the probes and Service use.
*/}}
{{- define "guardline.settings" -}}
{{- $v := .Values -}}
{{- $data := include "guardline.dataDir" . -}}
{{- $kafka := dict "spool_directory" (printf "%s/spool" $data) -}}
{{- if $v.kafka.enabled -}}
{{- if not $v.kafka.bootstrapServers -}}
{{- fail "kafka.bootstrapServers: list the brokers (host:port) or set kafka.enabled=false" -}}
{{- end -}}
{{- $_ := set $kafka "bootstrap_servers" $v.kafka.bootstrapServers -}}
{{- $_ = set $kafka "topic" $v.kafka.topic -}}
{{- $_ = set $kafka "security_protocol" $v.kafka.securityProtocol -}}
{{- with $v.kafka.saslMechanism }}{{ $_ = set $kafka "sasl_mechanism" . }}{{ end -}}
{{- with $v.kafka.saslUsername }}{{ $_ = set $kafka "sasl_username" . }}{{ end -}}
{{- if $v.kafka.saslPassword.secretName -}}
{{- $_ = set $kafka "sasl_password_env" "GUARDLINE_KAFKA_SASL_PASSWORD" -}}
{{- end -}}
{{- end -}}
{{- $samples := dict "jsonl" (dict "directory" (printf "%s/samples" $data)) "kafka" $kafka -}}
{{- $reeval := dict "directory" (printf "%s/reeval" $data) -}}
{{- if $v.reeval.worker.enabled -}}
{{- if not $v.kafka.enabled -}}
{{- fail "reeval.worker needs kafka.enabled: jobs reach the workers through a Kafka topic" -}}
{{- end -}}
{{- $_ := set $reeval "queue" "kafka" -}}
{{- end -}}
{{- $settings := dict "samples" $samples "reeval" $reeval -}}
{{- if $v.otlp.enabled -}}
{{- $endpoint := required "otlp.endpoint: the collector's OTLP/HTTP URL, e.g. http://otel-collector:4318" $v.otlp.endpoint -}}
{{- $_ := set $settings "telemetry" (dict "otlp_endpoint" $endpoint "otlp_interval" $v.otlp.interval) -}}
{{- end -}}
{{- $settings = mergeOverwrite $settings (deepCopy $v.config) -}}
{{- $_ := set $settings "host" "0.0.0.0" -}}
{{- $_ = set $settings "port" (int $v.containerPort) -}}
{{- toYaml $settings -}}
{{- end -}}

{{/* A Secret reference {secretName, key} as an env var: (dict "name" "ENV" "ref" $ref "what" "feedbackSecret"). */}}
{{- define "guardline.secretEnvVar" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .ref.secretName }}
      key: {{ required (printf "%s.key: the key in Secret %s" .what .ref.secretName) .ref.key }}
{{- end -}}

{{/*
A Guardline pod template. Parameters:
  root       the chart context ($)
  component  app.kubernetes.io/component
  args       the container's arguments (after `guardline`)
  port       a port to serve and probe, or 0 for none
  env        extra Secret-backed env vars: a list of (dict "name" "ref" {secretName, key} "what")
  resources  the container's resources
  data       the volume source of /var/lib/guardline (YAML, from guardline.dataVolume)
Every Guardline container gets the same settings file, secrets, volumes and security context.
*/}}
{{- define "guardline.podTemplate" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $minGrace := add (include "guardline.shutdownSeconds" $root | int) (ternary (int $v.preStop.sleepSeconds) 0 (and $v.preStop.enabled (gt (int .port) 0))) -}}
{{- if le (int $v.terminationGracePeriodSeconds) $minGrace -}}
{{- fail (printf "terminationGracePeriodSeconds: must exceed %d (preStop pause plus Guardline's %s s shutdown)" $minGrace (include "guardline.shutdownSeconds" $root)) -}}
{{- end -}}
metadata:
  labels:
    {{- include "guardline.labels" (dict "root" $root "component" .component) | nindent 4 }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include "guardline.settings" $root | sha256sum }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "guardline.serviceAccountName" $root }}
  automountServiceAccountToken: false
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
  containers:
    - name: {{ .component }}
      image: {{ include "guardline.image" $root | quote }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      command:
        - guardline
      args:
        {{- toYaml .args | nindent 8 }}
      {{- if gt (int .port) 0 }}
      ports:
        - name: http
          containerPort: {{ .port }}
          protocol: TCP
      startupProbe:
        httpGet:
          path: /readyz
          port: http
        {{- toYaml $v.probes.startup | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        {{- toYaml $v.probes.readiness | nindent 8 }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        {{- toYaml $v.probes.liveness | nindent 8 }}
      {{- if $v.preStop.enabled }}
      lifecycle:
        preStop:
          {{- if semverCompare ">=1.30-0" $root.Capabilities.KubeVersion.Version }}
          sleep:
            seconds: {{ $v.preStop.sleepSeconds }}
          {{- else }}
          exec:
            command: ["sleep", {{ $v.preStop.sleepSeconds | quote }}]
          {{- end }}
      {{- end }}
      {{- end }}
      {{- $env := list }}
      {{- with $v.feedbackSecret }}{{ if .secretName }}
      {{- $env = append $env (dict "name" "GUARDLINE_FEEDBACK_SECRET" "ref" . "what" "feedbackSecret") }}
      {{- end }}{{ end }}
      {{- if and $v.kafka.enabled $v.kafka.saslPassword.secretName }}
      {{- $env = append $env (dict "name" "GUARDLINE_KAFKA_SASL_PASSWORD" "ref" $v.kafka.saslPassword "what" "kafka.saslPassword") }}
      {{- end }}
      {{- range .env }}
      {{- $env = append $env . }}
      {{- end }}
      {{- range $v.secretEnv }}
      {{- $env = append $env (dict "name" .name "ref" . "what" (printf "secretEnv %s" .name)) }}
      {{- end }}
      {{- if $env }}
      env:
        {{- range $env }}
        {{- include "guardline.secretEnvVar" . | nindent 8 }}
        {{- end }}
      {{- end }}
      {{- with $v.existingSecret }}
      envFrom:
        - secretRef:
            name: {{ . }}
      {{- end }}
      resources:
        {{- toYaml .resources | nindent 8 }}
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: {{ include "guardline.configDir" $root }}
          readOnly: true
        - name: data
          mountPath: {{ include "guardline.dataDir" $root }}
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: config
      configMap:
        name: {{ include "guardline.fullname" $root }}
    - name: data
      {{- .data | nindent 6 }}
    - name: tmp
      emptyDir:
        sizeLimit: {{ $v.tmpSizeLimit }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* The data volume source: (dict "p" <persistence block> "claim" <PVC name> "sizeLimit" <emptyDir limit>). */}}
{{- define "guardline.dataVolume" -}}
{{- if .p.enabled -}}
{{- dict "persistentVolumeClaim" (dict "claimName" (default .claim .p.existingClaim)) | toYaml -}}
{{- else if .sizeLimit -}}
{{- dict "emptyDir" (dict "sizeLimit" .sizeLimit) | toYaml -}}
{{- else -}}
{{- dict "emptyDir" (dict) | toYaml -}}
{{- end -}}
{{- end -}}

{{/* A PersistentVolumeClaim for a persistence block: (dict "root" $ "p" ... "name" ... "component" ...). */}}
{{- define "guardline.pvc" -}}
{{- if and .p.enabled (not .p.existingClaim) -}}
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "guardline.labels" (dict "root" .root "component" .component) | nindent 4 }}
  annotations:
    helm.sh/resource-policy: keep
spec:
  accessModes:
    {{- toYaml .p.accessModes | nindent 4 }}
  {{- with .p.storageClass }}
  storageClassName: {{ . | quote }}
  {{- end }}
  resources:
    requests:
      storage: {{ .p.size }}
{{- end -}}
{{- end -}}
