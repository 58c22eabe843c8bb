//! EC2 runner provider (aws-sdk-ec2), kept in its own crate so the default build stays fast.
