"""Default plugins, registered by the same loader as third-party ones."""

DEFAULT_PLUGINS: tuple[str, ...] = (
    "docwiz.builtin.local_storage",
    "docwiz.builtin.offline_generator",
    "docwiz.builtin.template_text",
)
