"""Controllers that make the arena's objects behave: deployments, replica sets, scheduler, kubelet, endpoints, ..."""
