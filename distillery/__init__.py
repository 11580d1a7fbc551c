"""The CLI shell: every `distillery` command, on top of the filters <- models <- monitoring <- streams layers."""
