"""kd-ls's ready configs, shipped inside the package as `kd_ls.configs` (see pyproject.toml).

The YAML files mirror the code: data/, trainer/, teacher/, student/, study/, fast/, mueller2019/.
"""
