"""Webhooks, the API's side: endpoints per project (owner: `WebhookEndpoints`) and their
deliveries (`WebhookDeliveries`). The router in `api/routes/webhooks.py` stays thin;
their typed dependencies are in `api/deps.py`."""
