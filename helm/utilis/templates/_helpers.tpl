{{/*
Shared named templates: every Deployment, HPA, PDB, Service, ConfigMap, ServiceAccount and migration Job
of the chart is rendered here, once, and the files next to this one only range over `services` and their
`processes`. Most helpers take a context dict:

  root  the chart's root context ($)
  name  the service's name (a key of .Values.services): also its image, Service, ServiceAccount and labels
  svc   the service's values
  kind  a process kind (api, relay, consumer, scheduler)
  proc  the process's values: processDefaults.<kind> deep-merged with svc.processes.<kind> (utilis.process)
*/}}

{{/* Deep merge of two maps (override wins, false/0/[] included), as YAML: (dict "base" .. "override" ..) */}}
{{- define "utilis.merge" -}}
{{- $dst := deepCopy (.base | default dict) -}}
{{- range $k, $v := (.override | default dict) -}}
{{-   if and (kindIs "map" $v) (kindIs "map" (get $dst $k)) -}}
{{-     $_ := set $dst $k (include "utilis.merge" (dict "base" (get $dst $k) "override" $v) | fromYaml) -}}
{{-   else -}}
{{-     $_ := set $dst $k $v -}}
{{-   end -}}
{{- end -}}
{{- toYaml $dst -}}
{{- end -}}

{{/* A process's effective values, as YAML: (dict "root" $ "name" .. "svc" .. "kind" ..) */}}
{{- define "utilis.process" -}}
{{- $defaults := get .root.Values.processDefaults .kind -}}
{{- if not $defaults -}}
{{-   fail (printf "services.%s.processes.%s: unknown process kind (processDefaults has %s)" .name .kind (keys .root.Values.processDefaults | sortAlpha | join ", ")) -}}
{{- end -}}
{{- $override := get .svc.processes .kind | default dict -}}
{{- if not (hasKey $override "port") -}}
{{-   fail (printf "services.%s.processes.%s.port is required (the port in deploy/platform.yaml)" .name .kind) -}}
{{- end -}}
{{- include "utilis.merge" (dict "base" $defaults "override" $override) -}}
{{- end -}}

{{- define "utilis.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select a service's pods of one component: (dict "root" $ "name" .. "component" ..) */}}
{{- define "utilis.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{/* Every object's labels: (dict "root" $ "name" .. "component" ..); name may be the release's own name. */}}
{{- define "utilis.labels" -}}
{{ include "utilis.selectorLabels" . }}
app.kubernetes.io/part-of: utilis
app.kubernetes.io/version: {{ .version | default .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ include "utilis.chart" .root }}
{{- end -}}

{{/* The chart's pods (every service, every component): what the release-wide policies select. */}}
{{- define "utilis.releasePods" -}}
app.kubernetes.io/part-of: utilis
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The image reference, as YAML {ref, tag, pullPolicy}: (dict "root" $ "name" .. "svc" .. "proc" ..) */}}
{{- define "utilis.image" -}}
{{- $global := .root.Values.global.image -}}
{{- $base := dict "repository" (printf "%s/%s" $global.registry .name) "tag" ($global.tag | default .root.Chart.AppVersion) "pullPolicy" $global.pullPolicy "digest" "" -}}
{{- $image := include "utilis.merge" (dict "base" $base "override" (.svc.image | default dict)) | fromYaml -}}
{{- $image = include "utilis.merge" (dict "base" $image "override" ((.proc).image | default dict)) | fromYaml -}}
{{- if eq (toString $image.tag) "latest" -}}
{{-   fail (printf "%s: the image tag `latest` is mutable; use the release's version" .name) -}}
{{- end -}}
ref: {{ if $image.digest }}{{ printf "%s@%s" $image.repository $image.digest }}{{ else }}{{ printf "%s:%s" $image.repository (toString $image.tag) }}{{ end }}
tag: {{ toString $image.tag | quote }}
pullPolicy: {{ $image.pullPolicy }}
{{- end -}}

{{/* The service's API port, or "" when it has no enabled API: (dict "root" $ "name" .. "svc" ..) */}}
{{- define "utilis.apiPort" -}}
{{- $api := get (.svc.processes | default dict) "api" -}}
{{- if and $api (ne (toString (dig "enabled" true $api)) "false") -}}
{{- int $api.port -}}
{{- end -}}
{{- end -}}

{{/* The service's non-secret settings (its ConfigMap's data), as YAML: (dict "root" $ "name" .. "svc" ..) */}}
{{- define "utilis.configData" -}}
{{- $root := .root -}}
{{- $data := dict -}}
{{- $_ := set $data "UTILIS_KAFKA_BOOTSTRAP" $root.Values.kafka.bootstrap -}}
{{- $_ := set $data "UTILIS_KAFKA_TOPIC_PREFIX" ($root.Values.kafka.topicPrefix | default "") -}}
{{- $gateway := get $root.Values.services "gateway" -}}
{{- if and $gateway $gateway.enabled (ne .name "gateway") -}}
{{-   $port := include "utilis.apiPort" (dict "root" $root "name" "gateway" "svc" $gateway) -}}
{{-   if $port -}}
{{-     $_ := set $data "UTILIS_JWKS_URL" (printf "http://gateway:%s/.well-known/jwks.json" $port) -}}
{{-   end -}}
{{- end -}}
{{- if eq .name "gateway" -}}
{{-   $upstreams := dict -}}
{{-   range $other, $svc := $root.Values.services -}}
{{-     if and $svc $svc.enabled (ne $other "gateway") -}}
{{-       $port := include "utilis.apiPort" (dict "root" $root "name" $other "svc" $svc) -}}
{{-       if $port -}}
{{-         $_ := set $upstreams ($svc.route | default $other) (printf "http://%s:%s" $other $port) -}}
{{-       end -}}
{{-     end -}}
{{-   end -}}
{{-   $_ := set $data "UTILIS_UPSTREAMS" (toJson $upstreams) -}}
{{- end -}}
{{- range $k, $v := $root.Values.config -}}
{{-   $_ := set $data $k (toString $v) -}}
{{- end -}}
{{- range $k, $v := (.svc.config | default dict) -}}
{{-   $_ := set $data $k (toString $v) -}}
{{- end -}}
{{- toYaml $data -}}
{{- end -}}

{{/* Environment from the service's Secret (references only), as a YAML list: (dict "root" $ "name" .. "svc" ..) */}}
{{- define "utilis.secretEnv" -}}
{{- $secret := dig "secrets" "existingSecret" (printf "%s-secrets" .name) .svc -}}
{{- $keys := .root.Values.secrets.keys -}}
{{- if has "redis" (.svc.needs | default list) -}}
{{-   $keys = append $keys .root.Values.secrets.redisKey -}}
{{- end -}}
{{- $keys = concat $keys (dig "secrets" "extraKeys" list .svc) -}}
{{- range $keys }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ . }}
{{- end }}
{{- end -}}

{{/* The pod-level pieces every pod of the chart shares. */}}
{{- define "utilis.podCommon" -}}
serviceAccountName: {{ .serviceAccount }}
automountServiceAccountToken: false
{{- with .root.Values.global.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: {{ .root.Values.tmpVolume.sizeLimit }}
{{- range $i, $f := (.svc.secretFiles | default list) }}
  - name: secret-file-{{ $i }}
    secret:
      secretName: {{ $f.secretName }}
      defaultMode: 0440
{{- end }}
{{- range $i, $v := (.svc.sharedVolumes | default list) }}
  - name: shared-volume-{{ $i }}
    persistentVolumeClaim:
      claimName: {{ $v.claimName }}
{{- end }}
{{- end -}}

{{/* The container-level pieces every container of the chart shares (env, security, mounts). The settings
come from the service's ConfigMap, or inline (`inlineConfig`, the migration Job: hooks run before it exists). */}}
{{- define "utilis.containerCommon" -}}
{{- if not .inlineConfig }}
envFrom:
  - configMapRef:
      name: {{ .name }}-config
{{- end }}
env:
{{- with .portVar }}
  - name: {{ .name }}
    value: {{ .value | quote }}
{{- end }}
{{- include "utilis.secretEnv" . | trim | nindent 2 }}
{{- range $k, $v := (.env | default dict) }}
  - name: {{ $k }}
    value: {{ toString $v | quote }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.containerSecurityContext | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- range $i, $f := (.svc.secretFiles | default list) }}
  - name: secret-file-{{ $i }}
    mountPath: {{ $f.mountPath }}
    readOnly: true
{{- end }}
{{- range $i, $v := (.svc.sharedVolumes | default list) }}
  - name: shared-volume-{{ $i }}
    mountPath: {{ $v.mountPath }}
{{- end }}
{{- end -}}

{{/* An HTTP probe on the pod's `http` port: a probes.<startup|liveness|readiness> value. */}}
{{- define "utilis.probe" -}}
httpGet:
  path: {{ .path }}
  port: http
{{- range $k, $v := omit . "path" }}
{{ $k }}: {{ $v }}
{{- end }}
{{- end -}}

{{/* One process kind of one service: its Deployment. (dict "root" $ "name" .. "svc" .. "kind" .. "proc" ..) */}}
{{- define "utilis.deployment" -}}
{{- $proc := .proc -}}
{{- $image := include "utilis.image" . | fromYaml -}}
{{- $labels := dict "root" .root "name" .name "component" .kind "version" $image.tag -}}
{{- $portVar := ternary "UTILIS_HTTP_PORT" "UTILIS_MANAGEMENT_PORT" (eq .kind "api") -}}
{{- if and (eq .kind "relay") (or $proc.autoscaling.enabled (gt (int $proc.replicaCount) 1)) -}}
{{-   fail (printf "services.%s.processes.relay: one replica, no autoscaling (two relays can publish a key's events out of order)" .name) -}}
{{- end -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .name }}-{{ .kind }}
  labels:
    {{- include "utilis.labels" $labels | nindent 4 }}
spec:
  {{- if not $proc.autoscaling.enabled }}
  replicas: {{ int $proc.replicaCount }}
  {{- end }}
  # Kept for `helm rollback` and `kubectl rollout undo`.
  revisionHistoryLimit: 10
  strategy:
    {{- toYaml $proc.updateStrategy | nindent 4 }}
  selector:
    matchLabels:
      {{- include "utilis.selectorLabels" $labels | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "utilis.labels" $labels | nindent 8 }}
      annotations:
        checksum/config: {{ include "utilis.configData" . | sha256sum }}
        {{- with $proc.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- include "utilis.podCommon" (dict "root" .root "svc" .svc "serviceAccount" .name) | nindent 6 }}
      terminationGracePeriodSeconds: {{ int $proc.terminationGracePeriodSeconds }}
      {{- with $proc.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $proc.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $proc.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $proc.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- range . }}
        - {{ toYaml (merge (dict "labelSelector" (dict "matchLabels" (include "utilis.selectorLabels" $labels | fromYaml))) .) | nindent 10 | trim }}
        {{- end }}
      {{- end }}
      containers:
        - name: {{ .kind }}
          image: {{ $image.ref }}
          imagePullPolicy: {{ $image.pullPolicy }}
          args:
            {{- toYaml ($proc.command | default (list .kind)) | nindent 12 }}
          ports:
            - name: http
              containerPort: {{ int $proc.port }}
              protocol: TCP
          {{- include "utilis.containerCommon" (dict "root" .root "name" .name "svc" .svc "env" $proc.env "portVar" (dict "name" $portVar "value" (toString (int $proc.port)))) | trim | nindent 10 }}
          resources:
            {{- toYaml $proc.resources | nindent 12 }}
          startupProbe:
            {{- include "utilis.probe" $proc.probes.startup | nindent 12 }}
          livenessProbe:
            {{- include "utilis.probe" $proc.probes.liveness | nindent 12 }}
          readinessProbe:
            {{- include "utilis.probe" $proc.probes.readiness | nindent 12 }}
          {{- if gt (int $proc.preStopSleepSeconds) 0 }}
          lifecycle:
            preStop:
              exec:
                command: ["sleep", "{{ int $proc.preStopSleepSeconds }}"]
          {{- end }}
{{- end -}}

{{/* The HorizontalPodAutoscaler that replaces a Deployment's replica count (autoscaling.enabled). */}}
{{- define "utilis.hpa" -}}
{{- $a := .proc.autoscaling -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ .name }}-{{ .kind }}
  labels:
    {{- include "utilis.labels" (dict "root" .root "name" .name "component" .kind) | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ .name }}-{{ .kind }}
  minReplicas: {{ int $a.minReplicas }}
  maxReplicas: {{ int $a.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ int $a.targetCPUUtilizationPercentage }}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: {{ int $a.scaleDownStabilizationSeconds }}
{{- end -}}

{{/* The PodDisruptionBudget of one process (pdb.enabled): maxUnavailable or minAvailable. */}}
{{- define "utilis.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}-{{ .kind }}
  labels:
    {{- include "utilis.labels" (dict "root" .root "name" .name "component" .kind) | nindent 4 }}
spec:
  {{- if hasKey .proc.pdb "minAvailable" }}
  minAvailable: {{ .proc.pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ .proc.pdb.maxUnavailable | default 1 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "utilis.selectorLabels" (dict "root" .root "name" .name "component" .kind) | nindent 6 }}
{{- end -}}

{{/* The Service in front of a service's API: DNS name = the service's name, port = its API port. */}}
{{- define "utilis.apiService" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ .name }}
  labels:
    {{- include "utilis.labels" (dict "root" .root "name" .name "component" "api") | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "utilis.selectorLabels" (dict "root" .root "name" .name "component" "api") | nindent 4 }}
  ports:
    - name: http
      port: {{ int .proc.port }}
      targetPort: http
      protocol: TCP
      appProtocol: http
{{- end -}}

{{/* `<service> migrate` as a pre-install/pre-upgrade hook Job, with a hook ServiceAccount of its own (hooks
run before the release's ServiceAccount and ConfigMap exist on a first install, so the Job's settings are
inline and its Secret must exist beforehand). */}}
{{- define "utilis.migrationJob" -}}
{{- $m := .root.Values.migrations -}}
{{- $image := include "utilis.image" (dict "root" .root "name" .name "svc" .svc) | fromYaml -}}
{{- $labels := dict "root" .root "name" .name "component" "migrate" "version" $image.tag -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .name }}-migrate
  labels:
    {{- include "utilis.labels" $labels | nindent 4 }}
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "-10"
    helm.sh/hook-delete-policy: before-hook-creation
automountServiceAccountToken: false
---
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .name }}-migrate
  labels:
    {{- include "utilis.labels" $labels | nindent 4 }}
  annotations:
    # Before any new pod starts; `helm rollback` runs no hook, so no migration runs backwards.
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "0"
    # A failed Job is kept for its logs until the next install/upgrade; a successful one is removed.
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  backoffLimit: {{ int $m.backoffLimit }}
  activeDeadlineSeconds: {{ int $m.activeDeadlineSeconds }}
  template:
    metadata:
      labels:
        {{- include "utilis.labels" $labels | nindent 8 }}
    spec:
      restartPolicy: Never
      {{- include "utilis.podCommon" (dict "root" .root "svc" .svc "serviceAccount" (printf "%s-migrate" .name)) | nindent 6 }}
      containers:
        - name: migrate
          image: {{ $image.ref }}
          imagePullPolicy: {{ $image.pullPolicy }}
          args: ["migrate"]
          {{- $env := include "utilis.configData" . | fromYaml }}
          {{- include "utilis.containerCommon" (dict "root" .root "name" .name "svc" .svc "env" $env "inlineConfig" true) | trim | nindent 10 }}
          resources:
            {{- toYaml $m.resources | nindent 12 }}
{{- end -}}
