//! Runner providers that need no cloud SDK: the local process provider.
