// The meetings service on Azure (`azd up`): a Flex Consumption Python function app running as a
// user-assigned managed identity that reaches storage (host, tables, queues, deployment
// package), Key Vault (references for every secret) and Application Insights, with an optional
// virtual network and private endpoints. Every parameter is mapped in main.parameters.json to
// the azd environment variable that sets it (docs/deployment.md lists them); a parameter's
// default here is its only default.
targetScope = 'subscription'

// ---------------------------------------------------------------------------------------------
// The deployment
// ---------------------------------------------------------------------------------------------

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; names the resource group and seeds resource names.')
param environmentName string

@minLength(1)
@metadata({ azd: { type: 'location' } })
@description('Region of every resource; one where Flex Consumption is offered.')
param location string

@description('Object id of the principal running the deployment (azd: AZURE_PRINCIPAL_ID). It may write the vault\'s secrets; a user also gets storage data roles. Empty: none.')
param principalId string = ''

@allowed(['User', 'ServicePrincipal'])
@description('Kind of that principal (azd: AZURE_PRINCIPAL_TYPE).')
param principalType string = 'User'

@description('Name of the function app, i.e. https://<name>.azurewebsites.net (globally unique). Empty: func-<unique token>.')
param functionAppName string = ''

@description('A virtual network: the app is integrated with it and storage is reached only through private endpoints.')
param vnetEnabled bool = false

@allowed([
  'Standard_ZRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
  'Standard_LRS'
  'Standard_GRS'
  'Standard_RAGRS'
])
@description('Redundancy of the storage account, which holds every booking. GZRS/RA-GZRS add a copy in the paired region.')
param storageSku string = 'Standard_ZRS'

@description('A CanNotDelete lock on the storage account (creating it needs Owner or User Access Administrator; remove it before azd down).')
param storageDeleteLock bool = false

@description('Zone-redundant Flex Consumption plan. The platform then keeps two always-ready instances per scale group, billed at rest (docs/deployment.md, costs).')
param zoneRedundant bool = false

@minValue(40)
@maxValue(1000)
@description('Most instances the app scales out to.')
param maximumInstanceCount int = 40

@allowed([512, 2048, 4096])
@description('Memory of one instance, in MB.')
param instanceMemoryMB int = 2048

@minValue(1)
@maxValue(1000)
@description('HTTP requests one instance takes at once before the platform adds another (docs/deployment.md, concurrency).')
param httpPerInstanceConcurrency int = 4

@minValue(1)
@maxValue(64)
@description('Threads of the Python worker (PYTHON_THREADPOOL_THREAD_COUNT): at least the queue messages an instance keeps in flight.')
param pythonThreadCount int = 24

@description('Comma-separated origins (https://app.example.com) allowed to call the API from a browser. Empty: none.')
param corsAllowedOrigins string = ''

@description('Address the alerts are e-mailed to (an action group). Empty: the alert rules still fire and show in the portal, but nobody is e-mailed.')
param alertEmail string = ''

// ---------------------------------------------------------------------------------------------
// App settings (SPEC section 11; shared/settings.py SETTINGS)
// ---------------------------------------------------------------------------------------------

@description('Id of the default tenant: tokens without a tenant claim belong to it.')
param defaultTenantId string = 'default'

@description('Default tenant: Microsoft Entra directory (tenant) id. Empty: no default Microsoft profile.')
param microsoftTenantId string = ''

@description('Default tenant: application (client) id of the Entra app registration.')
param microsoftClientId string = ''

@allowed(['managed_identity', 'certificate', 'secret'])
@description('How the app signs in to Entra for the default tenant: managed_identity (the app\'s identity as a federated credential of the app registration), certificate or secret.')
param microsoftCredential string = 'managed_identity'

@description('Default tenant: UPN of the user who organizes the meetings.')
param teamsOrganizerEmail string = ''

@description('Default tenant: the client secret\'s expiry date (ISO), for the credential check\'s warnings.')
param microsoftClientSecretExpiresOn string = ''

@description('Microsoft Graph root (national clouds differ).')
param graphBaseUrl string = 'https://graph.microsoft.com/v1.0'

@description('Microsoft Entra login host (national clouds differ).')
param microsoftAuthorityHost string = 'https://login.microsoftonline.com'

@description('Timeout of one Graph call, in seconds.')
param graphTimeoutSeconds string = '10'

@description('Proxy URL for the calls to Graph, sign-in, token issuers and Stripe (empty: direct).')
param outboundProxy string = ''

@description('Six-field NCRONTAB schedule of the reconciliation timer.')
param reconcileSchedule string = '0 */5 * * * *'

@description('Hours ahead in which meetings are verified against Teams before they start.')
param verifyWindowHours string = '24'

@description('Minutes between the checks of each tenant\'s Microsoft credential.')
param credentialCheckMinutes string = '15'

@description('Seconds between the delayed retries of failed meeting work.')
param meetingRetrySchedule string = '30,120,600,3600,21600'

@description('Seconds a request may spend on its meeting before the queue takes over.')
param meetingInlineBudgetSeconds string = '5'

@description('How far ahead a booking may start, in days.')
param bookingHorizonDays string = '730'

@allowed(['graph', 'smtp'])
@description('How e-mail leaves: graph (sendMail from the tenant\'s mailbox) or smtp. The local folder transport has no place in Azure.')
param mailTransport string = 'graph'

@description('Sender address of smtp mail.')
param mailFrom string = ''

@description('SMTP submission server (STARTTLS), for mailTransport smtp.')
param mailSmtpHost string = ''

@description('SMTP submission port.')
param mailSmtpPort string = '587'

@description('SMTP sign-in user; when set, MAIL_SMTP_PASSWORD is referenced from the vault.')
param mailSmtpUsername string = ''

@description('Seconds an e-mail waits for its Teams meeting so that it carries the join link.')
param mailLinkWaitSeconds string = '600'

@description('Most e-mails a worker sends from one mailbox a minute (Exchange: about 30).')
param mailSendRatePerMinute string = '30'

@description('Trusted OIDC issuer of frontend tokens, e.g. https://securetoken.google.com/<project>.')
param authIssuer string = ''

@description('Audience those tokens carry, e.g. the Firebase project id.')
param authAudience string = ''

@description('https URL of the issuer\'s signing keys (JWKS).')
param authJwksUrl string = ''

@description('More trusted issuers: JSON list of {issuer, audience, jwksUrl}. Empty: none.')
param authIssuers string = ''

@description('Token claim naming the tenant.')
param authTenantClaim string = 'tenant'

@description('Token claim holding the roles.')
param authRolesClaim string = 'roles'

@description('The timer recovers webhooks Stripe failed to deliver, with the restricted key in the vault\'s stripe-api-key.')
param recoverMissedStripeWebhooks bool = false

// ---------------------------------------------------------------------------------------------
// Secrets: written to the vault when given, never to an app setting or an output
// ---------------------------------------------------------------------------------------------

@secure()
@description('Signing secret (whsec_...) of the Stripe webhook endpoint. Required: azd prompts for it.')
param stripeWebhookSecret string

@secure()
@description('Restricted Stripe key (Events: Read), for recoverMissedStripeWebhooks. Empty: the vault keeps what it has.')
param stripeApiKey string = ''

@secure()
@description('Client secret of the app registration, for microsoftCredential secret. Empty: the vault keeps what it has.')
param microsoftClientSecret string = ''

@secure()
@description('Private key and certificate (PEM) of the app registration, for microsoftCredential certificate. Empty: the vault keeps what it has.')
param microsoftClientCertificate string = ''

@secure()
@description('SMTP password, for mailSmtpUsername. Empty: the vault keeps what it has.')
param mailSmtpPassword string = ''

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

var token = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var appName = empty(functionAppName) ? 'func-${token}' : functionAppName
var storageAccountName = 'st${token}'
var keyVaultName = 'kv-${token}'
var deploymentContainerName = 'deploymentpackage'
// What shared/storage/ uses; the app also creates them if missing.
var tables = ['bookings', 'tenants', 'paymentevents', 'mailsent', 'checkmeetings']
var queues = ['meeting-ops', 'meeting-ops-poison', 'meeting-ops-parked', 'mail', 'mail-poison', 'mail-parked', 'attendance', 'attendance-poison']
var hasMicrosoftProfile = !empty(microsoftTenantId)

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: { location: location, tags: tags, name: 'id-${token}' }
}

// The identity the alert rules query Application Insights as (Log Analytics Reader on it only).
module alertsIdentity 'app/identity.bicep' = {
  name: 'alerts-identity'
  scope: rg
  params: { location: location, tags: tags, name: 'id-alerts-${token}' }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    location: location
    tags: tags
    logAnalyticsName: 'log-${token}'
    appInsightsName: 'appi-${token}'
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    location: location
    tags: tags
    name: storageAccountName
    sku: storageSku
    vnetEnabled: vnetEnabled
    deleteLock: storageDeleteLock
    tables: tables
    queues: queues
    deploymentContainerName: deploymentContainerName
  }
}

module keyVault 'app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    location: location
    tags: tags
    name: keyVaultName
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    stripeWebhookSecret: stripeWebhookSecret
    stripeApiKey: stripeApiKey
    microsoftClientSecret: microsoftClientSecret
    microsoftClientCertificate: microsoftClientCertificate
    mailSmtpPassword: mailSmtpPassword
  }
}

module vnet 'app/vnet.bicep' = if (vnetEnabled) {
  name: 'vnet'
  scope: rg
  params: { location: location, tags: tags, name: 'vnet-${token}' }
}

module privateEndpoints 'app/private-endpoints.bicep' = if (vnetEnabled) {
  name: 'private-endpoints'
  scope: rg
  params: {
    location: location
    tags: tags
    vnetId: vnetEnabled ? vnet.outputs.id : ''
    subnetId: vnetEnabled ? vnet.outputs.privateEndpointSubnetId : ''
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
  }
}

// Roles before the app: its first start already reads storage and resolves the vault references.
module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    identityPrincipalId: identity.outputs.principalId
    principalId: principalId
    principalType: principalType
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    alertsPrincipalId: alertsIdentity.outputs.principalId
  }
}

// Alert rules and the workbook (docs/operations.md: their queries and runbooks). The rules run
// as their identity, so they come after its role.
module alerts 'app/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  dependsOn: [rbac]
  params: {
    location: location
    tags: tags
    token: token
    appInsightsId: monitoring.outputs.appInsightsId
    identityId: alertsIdentity.outputs.id
    alertEmail: alertEmail
  }
}

module workbook 'app/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    location: location
    tags: tags
    token: token
    appInsightsId: monitoring.outputs.appInsightsId
  }
}

// Every app setting of the function app. Secrets appear only as Key Vault references; a
// reference that is not wanted is an empty value, which the app reads as unset.
var appSettings = {
  // Storage with the user-assigned identity; the service URIs (this cloud's suffix) win over
  // the account name.
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.outputs.clientId
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__blobServiceUri: 'https://${storageAccountName}.blob.${environment().suffixes.storage}'
  AzureWebJobsStorage__queueServiceUri: 'https://${storageAccountName}.queue.${environment().suffixes.storage}'
  AzureWebJobsStorage__tableServiceUri: 'https://${storageAccountName}.table.${environment().suffixes.storage}'
  STORAGE_ENDPOINT_SUFFIX: environment().suffixes.storage
  // The worker's threads: a request or message waiting for Graph holds one.
  PYTHON_THREADPOOL_THREAD_COUNT: string(pythonThreadCount)
  // Application Insights with Entra auth, as the user-assigned identity.
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.connectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.outputs.clientId};Authorization=AAD'
  // The default tenant's Microsoft profile.
  DEFAULT_TENANT_ID: defaultTenantId
  MICROSOFT_TENANT_ID: microsoftTenantId
  MICROSOFT_CLIENT_ID: microsoftClientId
  MICROSOFT_CREDENTIAL: hasMicrosoftProfile ? microsoftCredential : ''
  MICROSOFT_IDENTITY_CLIENT_ID: identity.outputs.clientId
  MICROSOFT_CLIENT_SECRET: (hasMicrosoftProfile && microsoftCredential == 'secret') ? '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.uri}secrets/microsoft-client-secret/)' : ''
  MICROSOFT_CLIENT_CERTIFICATE: (hasMicrosoftProfile && microsoftCredential == 'certificate') ? '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.uri}secrets/microsoft-client-certificate/)' : ''
  TEAMS_ORGANIZER_EMAIL: teamsOrganizerEmail
  MICROSOFT_CLIENT_SECRET_EXPIRES_ON: microsoftClientSecretExpiresOn
  GRAPH_BASE_URL: graphBaseUrl
  MICROSOFT_AUTHORITY_HOST: microsoftAuthorityHost
  GRAPH_TIMEOUT_SECONDS: graphTimeoutSeconds
  OUTBOUND_PROXY: outboundProxy
  // Meetings.
  RECONCILE_SCHEDULE: reconcileSchedule
  VERIFY_WINDOW_HOURS: verifyWindowHours
  CREDENTIAL_CHECK_MINUTES: credentialCheckMinutes
  MEETING_RETRY_SCHEDULE: meetingRetrySchedule
  MEETING_INLINE_BUDGET_SECONDS: meetingInlineBudgetSeconds
  BOOKING_HORIZON_DAYS: bookingHorizonDays
  // Payments.
  STRIPE_WEBHOOK_SECRET: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.uri}secrets/stripe-webhook-secret/)'
  STRIPE_API_KEY: recoverMissedStripeWebhooks ? '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.uri}secrets/stripe-api-key/)' : ''
  // Mail.
  MAIL_TRANSPORT: mailTransport
  MAIL_FROM: mailFrom
  MAIL_SMTP_HOST: mailSmtpHost
  MAIL_SMTP_PORT: mailSmtpPort
  MAIL_SMTP_USERNAME: mailSmtpUsername
  MAIL_SMTP_PASSWORD: (mailTransport == 'smtp' && !empty(mailSmtpUsername)) ? '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.uri}secrets/mail-smtp-password/)' : ''
  MAIL_LINK_WAIT_SECONDS: mailLinkWaitSeconds
  MAIL_SEND_RATE_PER_MINUTE: mailSendRatePerMinute
  // Callers' tokens.
  AUTH_ISSUER: authIssuer
  AUTH_AUDIENCE: authAudience
  AUTH_JWKS_URL: authJwksUrl
  AUTH_ISSUERS: authIssuers
  AUTH_TENANT_CLAIM: authTenantClaim
  AUTH_ROLES_CLAIM: authRolesClaim
}

module api 'app/function.bicep' = {
  name: 'api'
  scope: rg
  dependsOn: [rbac]
  params: {
    location: location
    tags: union(tags, { 'azd-service-name': 'api' })
    planName: 'plan-${token}'
    appName: appName
    identityId: identity.outputs.id
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    appSettings: appSettings
    corsAllowedOrigins: empty(corsAllowedOrigins) ? [] : split(replace(corsAllowedOrigins, ' ', ''), ',')
    subnetId: vnetEnabled ? vnet.outputs.appSubnetId : ''
    zoneRedundant: zoneRedundant
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs (azd writes them to the environment); no secret among them
// ---------------------------------------------------------------------------------------------

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output AZURE_FUNCTION_URI string = api.outputs.uri
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_URI string = keyVault.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_APPLICATION_INSIGHTS_NAME string = monitoring.outputs.appInsightsName
// The federated credential of the Entra app registration names this identity (subject = its
// principal id); MICROSOFT_IDENTITY_CLIENT_ID is its client id.
output AZURE_IDENTITY_NAME string = identity.outputs.name
output AZURE_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
