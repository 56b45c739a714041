"""The per-process resources the lifespan builds and the dependencies hand out."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from api.events import EventHub
from api.links import LinkSigner
from core.settings import Settings
from core.storage import Storage


@dataclass
class Resources:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    storage: Storage
    temporal: Client
    events: EventHub
    links: LinkSigner
