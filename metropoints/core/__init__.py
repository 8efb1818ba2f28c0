"""Core: configuration, database, identities and tokens, jobs, errors, i18n, the portal's shell, API helpers.

The ground floor: every package may import it, and it imports no domain package (the app factory, which knows every
package, is `metropoints.app`)."""
