"""Building blocks of the models; built only by ``snn_nas.builder.build_model``.

Import from the submodules (this package file imports nothing, so that the torch-free
``snn_nas.layers.params`` stays cheap to import):

* ``common``: ``MLPModel`` (the model contract), ``DropPath``, ``ModelInputError``;
* ``encoders``: spiking stem, patch-encoding ``DagCell``, SNN-MLP stem and ``SpaceToDepth``;
* ``mixing``: spiking token/channel mixing (``TokenBlock``, ``ChannelBlock``, ``AxialMLP``);
* ``spiking_mlp``: the ``spiking`` family (``SpikingMLP``);
* ``snn_mlp``: the ``snn_mlp`` family (``SNNMLP``);
* ``params``: parameter counts from a genotype alone, without torch.
"""
