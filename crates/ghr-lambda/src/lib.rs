//! ghr as AWS Lambda functions: the seed's serverless shape (API Gateway → webhook Lambda → SQS per tier →
//! scale-up Lambdas → EC2, a DynamoDB registry), running the same engine as `ghr serve`.
//!
//! One binary (`ghr-lambda`, packaged as the `bootstrap` of every function) plays the role its environment
//! names ([`env::Function`]):
//! - **webhook** (`<prefix>-webhook`, API Gateway HTTP API): `ghr serve`'s webhook handler — signature,
//!   deduplication, intake into the store — then hands what intake asked of the others to their queues;
//! - **tenant-manager** (`<prefix>-tenant-manager`, the `<prefix>-tenant-events` queue): the slow side of
//!   installation events, terminating an uninstalled or suspended tenant's runners (the tenant's record itself
//!   is written by the webhook before GitHub gets its answer);
//! - **scale-up** (`<prefix>-<tier>-scale-up`, the `<prefix>-<tier>-builds` queue): dispatch passes for the
//!   tenants its messages name — the store's reservation decides every limit — and the launches they reserve;
//! - **scale-down** (`<prefix>-scale-down`, the `<prefix>-teardown` queue and a schedule): runner teardowns
//!   (which free slots and so wake the tenant's waiting jobs), and on the schedule the reconciler's pass under
//!   the store's lease, plus a full dispatch pass as the backstop for a lost message.
//!
//! Messages are signals ([`ghr_engine::queue::Work`]): jobs wait in the store, never in a queue, so a
//! dead-letter queue only ever holds messages no function can read.

pub mod env;
pub mod handlers;
pub mod message;
pub mod secrets;
pub mod sqs;
pub mod testing;
pub mod wiring;
