"""Plots as asset metadata: a PNG inlined in Markdown, so the UI shows it with the materialization
(Dagster has no image metadata type; a data URL in Markdown is rendered in place)."""

import base64

import dagster as dg


def png_markdown(png: bytes, title: str, caption: str | None = None) -> dg.MetadataValue:
    image = base64.b64encode(png).decode()
    heading = f"**{caption}**\n\n" if caption else ""
    return dg.MetadataValue.md(f"{heading}![{title}](data:image/png;base64,{image})")
