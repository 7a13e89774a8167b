"""The application layer: projects, rounds, review, exports and the app's actions. No Gradio."""
