//! Table tests of the functions' environment.

use super::*;
