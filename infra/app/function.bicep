// The Flex Consumption plan and the Python 3.11 function app. The app runs as the user-assigned
// identity (identity.bicep) for storage, its deployment package, Key Vault references and
// Application Insights; its app settings are given whole by main.bicep.
param location string
param tags object
param planName string
param appName string
param identityId string
param deploymentContainerUrl string

@description('Every app setting of the function app (main.bicep builds them).')
param appSettings object

@description('Origins allowed to call the API from a browser; empty: none.')
param corsAllowedOrigins array

@description('Subnet the app is integrated with (delegated to Microsoft.App/environments); empty: none.')
param subnetId string

param zoneRedundant bool
param maximumInstanceCount int
param instanceMemoryMB int
param httpPerInstanceConcurrency int

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { tier: 'FlexConsumption', name: 'FC1' }
  properties: {
    reserved: true
    // Zone redundancy makes the platform keep two always-ready instances per scale group,
    // billed at rest; it is the zoneRedundant parameter (storage is zone-redundant by default).
    //checkov:skip=CKV_AZURE_225:Zone redundancy is the zoneRedundant parameter: on Flex Consumption it bills two always-ready instances per scale group at rest
    zoneRedundant: zoneRedundant
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    // A public API by design: booking platforms and Stripe call it from the internet.
    //checkov:skip=CKV_AZURE_222:A public API: booking frontends and Stripe's webhooks call it from the internet
    httpsOnly: true
    // Callers prove who they are with bearer JWTs (validated by the app), Stripe with signatures.
    //checkov:skip=CKV_AZURE_17:Callers authenticate with JWTs the app validates and Stripe with signed webhooks; neither presents client certificates
    clientAffinityEnabled: false
    // Key Vault references resolve with the user-assigned identity, not a system identity.
    keyVaultReferenceIdentity: identityId
    virtualNetworkSubnetId: empty(subnetId) ? null : subnetId
    // No ftpsState: Flex Consumption has no FTP, the property is deprecated for it (and rejected
    // in some regions); FTP and basic-auth publishing are closed by the policies below.
    //checkov:skip=CKV_AZURE_78:Flex Consumption has no FTP; ftpsState is deprecated for it, and basic publishing credentials (ftp, scm) are disabled
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
      cors: {
        allowedOrigins: corsAllowedOrigins
        supportCredentials: false
      }
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      // Instances come and go on demand, down to zero: no fixed pool to keep a minimum of.
      //checkov:skip=CKV_AZURE_212:Flex Consumption scales on demand, to zero; there is no fixed instance pool to keep a minimum of
      //checkov:skip=CKV_AZURE_213:Health check evicts instances from a fixed pool, which Flex Consumption does not have; GET /api/v1/health is probed by the smoke test
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        triggers: { http: { perInstanceConcurrency: httpPerInstanceConcurrency } }
      }
      runtime: { name: 'python', version: '3.11' }
    }
  }
}

// App settings only. checkov takes any sites/config for the site's web configuration; what it
// asks of that is answered on the site above or does not apply to a Flex Consumption app.
resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  //checkov:skip=CKV_AZURE_13:The API validates callers' JWTs itself (several issuers, tenant and role claims); Easy Auth, unsupported on Flex Consumption in its preview, would not replace that
  //checkov:skip=CKV_AZURE_222:Public access is the site's (a public API); this resource holds app settings only
  //checkov:skip=CKV_AZURE_88:Flex Consumption has no Azure Files content share; the package is in blob storage
  parent: app
  //checkov:skip=CKV_AZURE_80:A Python app: no .NET Framework version
  //checkov:skip=CKV_AZURE_63:App Service file-system HTTP logs; a Flex Consumption app sends its requests to Application Insights
  name: 'appsettings'
  //checkov:skip=CKV_AZURE_66:App Service failed-request tracing files; failures go to Application Insights
  //checkov:skip=CKV_AZURE_65:App Service detailed error pages on disk; errors go to Application Insights
  properties: appSettings
}

// No FTP and no basic-auth (publishing profile) deployments: azd deploys with an Entra token.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: { allow: false }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: { allow: false }
}

output name string = app.name
output uri string = 'https://${app.properties.defaultHostName}'
