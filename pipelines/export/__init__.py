"""Export stage: the energy-trace dataset published as a WfInstances contribution and a WTA trace."""
