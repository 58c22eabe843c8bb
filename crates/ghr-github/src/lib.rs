//! GitHub App integration: webhook signature and parsing, App JWT and installation tokens, REST client.
