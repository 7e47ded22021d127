"""CDK stacks and constructs of the kit (infrastructure only, no business logic)."""
