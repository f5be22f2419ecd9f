{{/* Names, labels and the pieces the Deployment and the Jobs share. */}}

{{- define "bunker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bunker.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "bunker.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "bunker.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "bunker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bunker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every object; call with (dict "root" $ "component" "server"). */}}
{{- define "bunker.labels" -}}
{{ include "bunker.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "bunker.serviceAccountName" -}}
{{- default (include "bunker.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "bunker.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Refusals the schema cannot express across fields. Included by every template that renders a pod. */}}
{{- define "bunker.validate" -}}
{{- $kms := .Values.kms.keyId -}}
{{- $local := .Values.secrets.wrappingKey.name -}}
{{- if and $kms $local -}}
{{- fail "set either kms.keyId or secrets.wrappingKey.name, not both: Bunker takes exactly one wrapping-key source" -}}
{{- end -}}
{{- if not (or $kms $local) -}}
{{- fail "set kms.keyId (the Terraform output kms_key_arn) or secrets.wrappingKey.name: Bunker needs a wrapping key" -}}
{{- end -}}
{{- if and $kms (not .Values.aws.region) -}}
{{- fail "kms.keyId needs aws.region (the Terraform output region); without it the AWS SDK uses us-east-1" -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) -}}
{{- fail "autoscaling.minReplicas is above autoscaling.maxReplicas" -}}
{{- end -}}
{{- end -}}

{{/* A secret's key as an environment variable: (dict "name" "BUNKER_DATABASE_URL" "secret" .Values.secrets.x). */}}
{{- define "bunker.secretEnv" -}}
{{- toYaml (list (dict "name" .name "valueFrom" (dict "secretKeyRef" (dict "name" .secret.name "key" .secret.key)))) -}}
{{- end -}}

{{/*
A list of environment variables, given as a YAML list of {name, value} or {name, valueFrom}: those whose value is
empty or null are left out (Bunker reads an empty one as unset anyway), so only what is set is passed.
*/}}
{{- define "bunker.env" -}}
{{- $env := list -}}
{{- range (fromYamlArray .) -}}
{{- if hasKey . "valueFrom" -}}
{{- $env = append $env . -}}
{{- else if and (not (kindIs "invalid" .value)) (ne (toString .value) "") -}}
{{- $env = append $env (dict "name" .name "value" (toString .value)) -}}
{{- end -}}
{{- end -}}
{{- toYaml $env -}}
{{- end -}}

{{/* The wrapping key's source and the AWS settings: the serving pods and the init Job. */}}
{{- define "bunker.keyEnv" -}}
- {name: AWS_REGION, value: {{ .Values.aws.region | toJson }}}
- {name: BUNKER_KMS_KEY_ID, value: {{ .Values.kms.keyId | toJson }}}
- {name: BUNKER_KMS_ENDPOINT, value: {{ .Values.kms.endpoint | toJson }}}
{{- if .Values.secrets.wrappingKey.name }}
{{ include "bunker.secretEnv" (dict "name" "BUNKER_WRAPPING_KEY" "secret" .Values.secrets.wrappingKey) }}
{{- end }}
{{- end -}}

{{- define "bunker.logEnv" -}}
- {name: BUNKER_LOG, value: {{ .Values.config.log | toJson }}}
- {name: BUNKER_LOG_FORMAT, value: {{ .Values.config.logFormat | toJson }}}
{{- end -}}

{{/* The container settings no value may weaken. */}}
{{- define "bunker.containerSecurityContext" -}}
securityContext:
  runAsNonRoot: true
  readOnlyRootFilesystem: true
  allowPrivilegeEscalation: false
  privileged: false
  capabilities:
    drop:
      - ALL
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{- define "bunker.podSecurityContext" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: {{ .Values.podSecurityContext.runAsUser }}
  runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
  fsGroup: {{ .Values.podSecurityContext.fsGroup }}
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{- define "bunker.caVolume" -}}
{{- with .Values.database.caBundle -}}
{{- if .configMap -}}
- name: rds-ca
  configMap:
    name: {{ .configMap }}
    items:
      - key: {{ .key }}
        path: {{ .key }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "bunker.caVolumeMount" -}}
{{- with .Values.database.caBundle -}}
{{- if .configMap -}}
- name: rds-ca
  mountPath: {{ .mountPath }}
  readOnly: true
{{- end }}
{{- end }}
{{- end -}}

{{/* Annotations of a resource the pre-install/pre-upgrade migrations Job needs: a hook created before it. */}}
{{- define "bunker.preHookAnnotations" -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: "-10"
helm.sh/hook-delete-policy: before-hook-creation
{{- end -}}

{{/* What every Job pod shares. */}}
{{- define "bunker.jobPodSpec" -}}
restartPolicy: Never
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{ include "bunker.podSecurityContext" . }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The serving container's environment, before empty values are dropped. */}}
{{- define "bunker.serveEnv" -}}
{{ include "bunker.secretEnv" (dict "name" "BUNKER_DATABASE_URL" "secret" .Values.secrets.servingDatabase) }}
- {name: BUNKER_LISTEN, value: {{ printf "0.0.0.0:%v" .Values.ports.api | toJson }}}
{{- if .Values.metrics.enabled }}
- {name: BUNKER_METRICS_LISTEN, value: {{ printf "0.0.0.0:%v" .Values.ports.metrics | toJson }}}
{{- if .Values.metrics.perTenant }}
- {name: BUNKER_METRICS_PER_TENANT, value: "true"}
{{- end }}
{{- end }}
{{ include "bunker.keyEnv" . }}
{{ include "bunker.logEnv" . }}
{{- with .Values.config }}
- {name: BUNKER_DOMAIN, value: {{ join "," .domains | toJson }}}
- {name: BUNKER_TRUSTED_PROXIES, value: {{ join "," .trustedProxies | toJson }}}
- {name: BUNKER_FILES_URL, value: {{ .filesUrl | toJson }}}
- {name: BUNKER_S3_ENDPOINT, value: {{ .s3Endpoint | toJson }}}
- {name: BUNKER_DB_POOL_SIZE, value: {{ .dbPoolSize | toJson }}}
- {name: BUNKER_TENANT_MAX_CONNECTIONS, value: {{ .tenantMaxConnections | toJson }}}
- {name: BUNKER_RATE_TENANT, value: {{ .rateLimits.tenant | toJson }}}
- {name: BUNKER_RATE_TOKEN, value: {{ .rateLimits.token | toJson }}}
- {name: BUNKER_RATE_IP, value: {{ .rateLimits.ip | toJson }}}
- {name: BUNKER_RATE_PUBLIC, value: {{ .rateLimits.public | toJson }}}
- {name: BUNKER_RATE_COSTLY, value: {{ .rateLimits.costly | toJson }}}
- {name: BUNKER_RATE_LOGIN, value: {{ .rateLimits.login | toJson }}}
- {name: BUNKER_MAIL_FROM, value: {{ .mailFrom | toJson }}}
{{- end }}
{{- if .Values.secrets.smtpUrl.name }}
{{ include "bunker.secretEnv" (dict "name" "BUNKER_SMTP_URL" "secret" .Values.secrets.smtpUrl) }}
{{- end }}
{{- if .Values.tls.enabled }}
- {name: BUNKER_TLS_CERT, value: {{ printf "%s/tls.crt" .Values.tls.mountPath | toJson }}}
- {name: BUNKER_TLS_KEY, value: {{ printf "%s/tls.key" .Values.tls.mountPath | toJson }}}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}
