"""The docker-free local runtime: reads template.yaml and runs its functions in-process."""
