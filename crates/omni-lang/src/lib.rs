//! OmniLisp language: reader -> syntax -> ctrr -> compile -> vm.
