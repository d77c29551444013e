"""``chatflow``: the operator CLI of a ChatFlow stack (local or deployed).

It knows the stack only from the outside: its Outputs (``outputs.json`` of the local
stack, or a CloudFormation stack's), the public HTTP API of CONTRACT.md, and AWS
itself only where the API has no route (granting the operator role, SendSms
commands on the queue).
"""
