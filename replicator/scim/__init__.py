"""The SCIM seam: the only package that imports aiohttp (client, auth, paging, errors, in-memory server)."""
