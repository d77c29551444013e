"""Pure domain logic: no boto3, no environment, no HTTP."""
