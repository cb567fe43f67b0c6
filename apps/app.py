"""Entry point for a Hugging Face Space (``app_file: app.py``): the facehub demo hub as module-level ``demo``."""

from facehub.apps.demo import build_demo

demo = build_demo()

if __name__ == "__main__":
    demo.queue()
    demo.launch(show_error=True)
