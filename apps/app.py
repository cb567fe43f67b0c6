"""Entry point for a Hugging Face Space (``app_file: app.py``): the facehub demo hub as module-level ``demo``, with
the same queue and upload limits as ``facehub demo`` (models folder: ``$FACEHUB_MODELS_DIR``)."""

from facehub.apps.demo import MAX_FILE_SIZE, build_demo, configure_queue

demo = configure_queue(build_demo())

if __name__ == "__main__":
    demo.launch(show_error=True, max_file_size=MAX_FILE_SIZE)
