// The meetings service on Azure: a Flex Consumption Python function app with its managed identity
// reaching storage (tables, queues, deployment blobs) and Key Vault, and Application Insights.
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('Name of the environment (azd), used to name resources.')
param environmentName string

@description('Primary location for all resources.')
param location string = resourceGroup().location

@description('Id of the default tenant (tokens without a tenant claim belong to it).')
param defaultTenantId string = 'default'

@description('Default tenant: Microsoft Entra directory (tenant) id. Empty: no default profile.')
param microsoftTenantId string = ''

@description('Default tenant: application (client) id.')
param microsoftClientId string = ''

@description('Default tenant: UPN of the mailbox that organizes meetings.')
param teamsOrganizerEmail string = ''

@description('Microsoft Graph root (national clouds differ).')
param graphBaseUrl string = 'https://graph.microsoft.com/v1.0'

@description('Microsoft Entra login host (national clouds differ).')
param microsoftAuthorityHost string = 'https://login.microsoftonline.com'

@description('Timeout of one Graph call, in seconds.')
param graphTimeoutSeconds string = '10'

@description('NCRONTAB schedule of the reconciliation timer.')
param reconcileSchedule string = '0 */5 * * * *'

@description('Hours ahead in which meetings are verified against Teams before they start.')
param verifyWindowHours string = '24'

@description('Seconds between the delayed retries of failed meeting work.')
param meetingRetrySchedule string = '30,120,600,3600,21600'

@description('Seconds a request may spend on its meeting before the queue takes over.')
param meetingInlineBudgetSeconds string = '5'

@description('How far ahead a booking may start, in days.')
param bookingHorizonDays string = '730'

@description('Trusted OIDC issuer of frontend tokens, e.g. https://securetoken.google.com/<project>.')
param authIssuer string

@description('Audience those tokens carry, e.g. the Firebase project id.')
param authAudience string

@description('https URL of the issuer\'s signing keys (JWKS).')
param authJwksUrl string

@description('More trusted issuers: JSON list of {issuer, audience, jwksUrl}; empty for none.')
param authIssuers string = ''

@description('Token claim naming the tenant.')
param authTenantClaim string = 'tenant'

@description('Token claim holding the roles.')
param authRolesClaim string = 'roles'

@allowed(['true', 'false'])
@description('\'true\' when the vault holds `stripe-api-key` (a restricted key that reads events), so the timer recovers webhooks Stripe failed to deliver. A string, as azd substitutes it.')
param recoverMissedStripeWebhooks string = 'false'

@allowed(['graph', 'smtp', 'folder'])
@description('How e-mail is delivered.')
param mailTransport string = 'graph'

@description('Sender address of smtp mail (graph sends from the tenant\'s own mailbox).')
param mailFrom string = ''

@description('SMTP submission server, for mailTransport smtp (STARTTLS; the password is the Key Vault secret mail-smtp-password).')
param mailSmtpHost string = ''

@description('SMTP submission port.')
param mailSmtpPort string = '587'

@description('SMTP sign-in user, if the server wants one.')
param mailSmtpUsername string = ''

@description('Seconds an e-mail waits for its Teams meeting so that it carries the join link.')
param mailLinkWaitSeconds string = '600'

@description('Most e-mails a worker sends from one mailbox a minute (Exchange: about 30).')
param mailSendRatePerMinute string = '30'

var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = { 'azd-env-name': environmentName }

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  params: { location: location, tags: tags, token: token }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  params: { location: location, tags: tags, token: token }
}

module keyVault 'app/keyvault.bicep' = {
  name: 'keyvault'
  params: { location: location, tags: tags, token: token }
}

module api 'app/function.bicep' = {
  name: 'api'
  params: {
    location: location
    tags: union(tags, { 'azd-service-name': 'api' })
    token: token
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    appInsightsConnectionString: monitoring.outputs.connectionString
    keyVaultUri: keyVault.outputs.uri
    includeDefaultProfileSecret: !empty(microsoftTenantId)
    includeStripeApiKey: recoverMissedStripeWebhooks == 'true'
    appSettings: {
      DEFAULT_TENANT_ID: defaultTenantId
      MICROSOFT_TENANT_ID: microsoftTenantId
      MICROSOFT_CLIENT_ID: microsoftClientId
      TEAMS_ORGANIZER_EMAIL: teamsOrganizerEmail
      GRAPH_BASE_URL: graphBaseUrl
      MICROSOFT_AUTHORITY_HOST: microsoftAuthorityHost
      GRAPH_TIMEOUT_SECONDS: graphTimeoutSeconds
      RECONCILE_SCHEDULE: reconcileSchedule
      VERIFY_WINDOW_HOURS: verifyWindowHours
      MEETING_RETRY_SCHEDULE: meetingRetrySchedule
      MEETING_INLINE_BUDGET_SECONDS: meetingInlineBudgetSeconds
      BOOKING_HORIZON_DAYS: bookingHorizonDays
      MAIL_TRANSPORT: mailTransport
      MAIL_FROM: mailFrom
      MAIL_FOLDER: '/tmp/mail'
      MAIL_SMTP_HOST: mailSmtpHost
      MAIL_SMTP_PORT: mailSmtpPort
      MAIL_SMTP_USERNAME: mailSmtpUsername
      // A Key Vault reference, resolved by the platform: the password itself never leaves the vault.
      MAIL_SMTP_PASSWORD: mailTransport == 'smtp' ? '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.uri}secrets/mail-smtp-password/)' : ''
      MAIL_LINK_WAIT_SECONDS: mailLinkWaitSeconds
      MAIL_SEND_RATE_PER_MINUTE: mailSendRatePerMinute
      AUTH_ISSUER: authIssuer
      AUTH_AUDIENCE: authAudience
      AUTH_JWKS_URL: authJwksUrl
      AUTH_ISSUERS: authIssuers
      AUTH_TENANT_CLAIM: authTenantClaim
      AUTH_ROLES_CLAIM: authRolesClaim
    }
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  params: {
    principalId: api.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
  }
}

output AZURE_LOCATION string = location
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output AZURE_FUNCTION_URI string = api.outputs.uri
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
