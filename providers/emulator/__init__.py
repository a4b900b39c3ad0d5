"""An LLM provider emulator speaking the OpenAI, Gemini and Anthropic wire formats.

See ``providers.emulator.app`` for the endpoints and the fault-injection control API.
"""

from __future__ import annotations

from providers.emulator.app import Emulator, create_app

__all__ = ["Emulator", "create_app"]
