"""Storyboard to film: shots rendered through the queue, the film assembled, the local-LLM scenarist."""
