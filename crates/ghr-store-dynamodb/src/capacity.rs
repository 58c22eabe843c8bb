//! Capacity accounting: what each request to DynamoDB costs in read and write capacity units (being written).
