"""The :class:`Registry` facade that combines every part of the registry service."""

from __future__ import annotations

import logging

from flexheg.registry._core import RegistryConfig
from flexheg.registry._db import Database, create_registry_engine, upgrade
from flexheg.registry._principals import PrincipalsMixin

logger = logging.getLogger(__name__)


class Registry(PrincipalsMixin):
    """The international body's registry over one database.

    Open it with :meth:`Registry.open` (which applies the schema migrations) and close it with
    :meth:`close`. Methods that change data take the acting principal and the time ``now``
    (a tick) and never read the clock.
    """

    @classmethod
    def open(cls, url: str, config: RegistryConfig | None = None) -> Registry:
        """Open the registry at ``url`` (``sqlite:///PATH`` or ``postgresql://...``)."""
        engine = create_registry_engine(url)
        upgrade(engine)
        logger.info("registry opened on %s (%s)", engine.url.render_as_string(), engine.dialect.name)
        return cls(Database(engine), config)
