// The Flex Consumption plan and the Python 3.11 function app with a system-assigned identity.
param location string
param tags object
param token string
param storageAccountName string
param deploymentContainerUrl string
param appInsightsConnectionString string
param keyVaultUri string
@description('The service\'s own app settings (SPEC §11), secrets excluded.')
param appSettings object
@description('Whether the default tenant has a Microsoft profile, so its secret must be referenced.')
param includeDefaultProfileSecret bool
@description('Whether a restricted Stripe read key is in the vault, to recover missed webhooks.')
param includeStripeApiKey bool

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${token}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { tier: 'FlexConsumption', name: 'FC1' }
  properties: { reserved: true }
}

// Key Vault references: the platform resolves them with the app's identity. Put the secrets in
// the vault as `microsoft-client-secret`, `stripe-webhook-secret` and (optional)
// `stripe-api-key` (docs/integrations/teams-meetings-setup.md, docs/integrations/stripe.md).
var profileSecret = includeDefaultProfileSecret ? {
  MICROSOFT_CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/microsoft-client-secret/)'
} : {}
var stripeApiKey = includeStripeApiKey ? {
  STRIPE_API_KEY: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/stripe-api-key/)'
} : {}
var secretSettings = union(profileSecret, stripeApiKey, {
  STRIPE_WEBHOOK_SECRET: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/stripe-webhook-secret/)'
})

var platformSettings = {
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__tableServiceUri: 'https://${storageAccountName}.table.${environment().suffixes.storage}'
  AzureWebJobsStorage__queueServiceUri: 'https://${storageAccountName}.queue.${environment().suffixes.storage}'
  AzureWebJobsStorage__clientId: ''
  STORAGE_ENDPOINT_SUFFIX: environment().suffixes.storage
  MICROSOFT_CREDENTIAL: 'secret'
  MICROSOFT_IDENTITY_CLIENT_ID: ''
  MICROSOFT_CLIENT_CERTIFICATE: 
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: 'func-${token}'
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: { type: 'SystemAssigned' }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: { minTlsVersion: '1.2' }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: { type: 'SystemAssignedIdentity' }
        }
      }
      scaleAndConcurrency: { maximumInstanceCount: 40, instanceMemoryMB: 2048 }
      runtime: { name: 'python', version: '3.11' }
    }
  }

  resource settings 'config' = {
    name: 'appsettings'
    properties: union(platformSettings, appSettings, secretSettings)
  }
}

output name string = app.name
output uri string = 'https://${app.properties.defaultHostName}'
output principalId string = app.identity.principalId
