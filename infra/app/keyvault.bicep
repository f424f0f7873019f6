// Secrets (MICROSOFT_CLIENT_SECRET, STRIPE_WEBHOOK_SECRET, per-tenant client secrets) live here;
// app settings hold Key Vault references to them, tables hold only setting names.
param location string
param tags object
param token string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: 'kv-${take(token, 20)}'
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
