//! One module per function. Each takes its event as the Lambda runtime delivers it and answers as Lambda
//! expects (an HTTP response; a partial batch response for SQS).

pub mod budget;
pub mod scale_down;
pub mod scale_up;
pub mod sqs_batch;
pub mod tenant_manager;
pub mod webhook;
