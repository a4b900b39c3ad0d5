from __future__ import annotations

from django.conf import settings

PROVIDER_KEYS = ("GROQ_API_KEY", "GOOGLE_API_KEY", "ANTHROPIC_API_KEY", "AI_GATEWAY_API_KEY")


def embedded_banner() -> str:
    """What the page says when answers do not come from real providers."""
    if settings.CHIMERA_EMULATOR_URL:
        return f"Provider emulator mode: answers come from the emulator at {settings.CHIMERA_EMULATOR_URL}."
    if not any(getattr(settings, key) for key in PROVIDER_KEYS):
        return (
            "Embedded mode: no provider key is set, so every answer comes from the local model "
            "SmolLM2-135M-Instruct (llama.cpp). Set GROQ_API_KEY, GOOGLE_API_KEY or ANTHROPIC_API_KEY for real providers."
        )
    return ""


TOOLS_UNAVAILABLE = (
    "Tools are off: the local model (embedded mode) cannot call tools. Set a provider key "
    "(GROQ_API_KEY, GOOGLE_API_KEY or ANTHROPIC_API_KEY) to use them."
)


def tools_available() -> bool:
    """Tools need a model that can call them: any real provider (or the emulator), not the local one."""
    from providers.catalog import direct_providers_configured

    return direct_providers_configured()


def chimera(request):
    return {
        "embedded_banner": embedded_banner(),
        "signup_open": settings.CHIMERA_SIGNUP_OPEN,
        "max_message_chars": settings.CHIMERA_MAX_MESSAGE_CHARS,
        "tools_available": tools_available(),
        "tools_unavailable": TOOLS_UNAVAILABLE,
    }
