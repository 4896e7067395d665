"""Where ``embed`` runs: in this process (``local``, :func:`pretrain.embed.embed_images`) or as a
distributed job over chunks of the bundle (``dask``, :mod:`pretrain.engines.dask_engine`),
resumable from its part files (:mod:`pretrain.engines.parts`)."""
