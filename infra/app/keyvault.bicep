// The vault for the app's secrets. App settings hold only Key Vault references to them
// (`@Microsoft.KeyVault(SecretUri=...)`), resolved by the platform with the app's user-assigned
// identity; tables hold only setting names.
//
// Secrets are written here, by the deployment, from @secure() parameters (azd's prompt or
// `azd env set`), so they exist before the app first starts. A parameter left empty writes
// nothing and leaves what the vault holds (for instance a secret set with `az keyvault secret set`).
param location string
param tags object
param name string
param logAnalyticsId string

@secure()
param stripeWebhookSecret string
@secure()
param stripeApiKey string
@secure()
param microsoftClientSecret string
@secure()
param microsoftClientCertificate string
@secure()
param mailSmtpPassword string

// The vault's secret names, referenced by the app settings in main.bicep.
var secretNames = {
  stripeWebhookSecret: 'stripe-webhook-secret'
  stripeApiKey: 'stripe-api-key'
  microsoftClientSecret: 'microsoft-client-secret'
  microsoftClientCertificate: 'microsoft-client-certificate'
  mailSmtpPassword: 'mail-smtp-password'
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    // Flex Consumption cannot resolve Key Vault references to a network-restricted vault, even
    // with VNet integration (Flex Consumption plan page, Considerations). RBAC guards it.
    //checkov:skip=CKV_AZURE_189:Key Vault references of a Flex Consumption app do not resolve from a vault without public network access
    //checkov:skip=CKV_AZURE_109:Key Vault references of a Flex Consumption app do not resolve through a vault firewall; access is by Entra RBAC only
    publicNetworkAccess: 'Enabled'
    networkAcls: { defaultAction: 'Allow', bypass: 'AzureServices' }
  }
}

resource stripeWebhookSecretValue 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(stripeWebhookSecret)) {
  parent: vault
  name: secretNames.stripeWebhookSecret
  //checkov:skip=CKV_AZURE_41:An expiry date makes Key Vault refuse the secret to the app (which then stops); the credential's own lifetime is tracked instead (docs/deployment.md, rotating credentials)
  //checkov:skip=CKV_AZURE_114:contentType is set; checkov does not read the properties of a conditional resource
  properties: { value: stripeWebhookSecret, contentType: 'text/plain' }
}

resource stripeApiKeyValue 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(stripeApiKey)) {
  parent: vault
  name: secretNames.stripeApiKey
  //checkov:skip=CKV_AZURE_41:An expiry date makes Key Vault refuse the secret to the app (which then stops); the credential's own lifetime is tracked instead (docs/deployment.md, rotating credentials)
  //checkov:skip=CKV_AZURE_114:contentType is set; checkov does not read the properties of a conditional resource
  properties: { value: stripeApiKey, contentType: 'text/plain' }
}

resource microsoftClientSecretValue 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(microsoftClientSecret)) {
  parent: vault
  name: secretNames.microsoftClientSecret
  //checkov:skip=CKV_AZURE_41:An expiry date makes Key Vault refuse the secret to the app (which then stops); the credential's own lifetime is tracked instead (docs/deployment.md, rotating credentials)
  //checkov:skip=CKV_AZURE_114:contentType is set; checkov does not read the properties of a conditional resource
  properties: { value: microsoftClientSecret, contentType: 'text/plain' }
}

resource microsoftClientCertificateValue 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(microsoftClientCertificate)) {
  parent: vault
  name: secretNames.microsoftClientCertificate
  //checkov:skip=CKV_AZURE_41:An expiry date makes Key Vault refuse the secret to the app (which then stops); the credential's own lifetime is tracked instead (docs/deployment.md, rotating credentials)
  //checkov:skip=CKV_AZURE_114:contentType is set; checkov does not read the properties of a conditional resource
  // The private key and the certificate in PEM, as a Key Vault certificate's secret holds them.
  properties: { value: microsoftClientCertificate, contentType: 'application/x-pem-file' }
}

resource mailSmtpPasswordValue 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(mailSmtpPassword)) {
  parent: vault
  name: secretNames.mailSmtpPassword
  //checkov:skip=CKV_AZURE_41:An expiry date makes Key Vault refuse the secret to the app (which then stops); the credential's own lifetime is tracked instead (docs/deployment.md, rotating credentials)
  //checkov:skip=CKV_AZURE_114:contentType is set; checkov does not read the properties of a conditional resource
  properties: { value: mailSmtpPassword, contentType: 'text/plain' }
}

// Who read or changed which secret, and who was refused (an unresolved reference shows here).
resource audit 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-to-log-analytics'
  scope: vault
  properties: {
    workspaceId: logAnalyticsId
    logs: [{ categoryGroup: 'audit', enabled: true }]
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
output secretNames object = secretNames
