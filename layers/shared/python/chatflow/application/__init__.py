"""Application services: what each entry point runs, over the domain's rules and the ports.

The domain (``chatflow.domain``) holds the rules and the services of one concern; a
service here coordinates them for one kind of trigger (a WebSocket frame, a stream record,
a queue message). Nothing here reads the environment or imports boto3: the composition
(``chatflow.composition``) hands each service its adapters.
"""
