"""The arena's Kubernetes REST API: discovery, OpenAPI, REST verbs, patches, subresources, tables."""
