# utal-lightning on a CUDA machine.
#   docker build -t utal-lightning .
#   docker run --gpus all --shm-size=8g -v /path/to/features:/data -v "$PWD/runs:/work/runs" \
#       utal-lightning fit --config configs/thumos_copl.yaml
# /work/data points at /data, so the configs' roots (data/THUMOS14, data/ActivityNet12) find
# /data/THUMOS14 and /data/ActivityNet12; any other folder: --data.init_args.root /data/<name>.
# The base image brings Python, CUDA and torch; another one: --build-arg BASE_IMAGE=...
ARG BASE_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg

WORKDIR /opt/utal-lightning
COPY pyproject.toml README.md ./
COPY utal_lightning ./utal_lightning
# Keep the base image's torch: pin it to the installed version (pyproject allows torch>=2.3,<3),
# so pip installs the other dependencies and never pulls a second torch build; the wandb extra for
# configs/wandb.yaml.
RUN python -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > /tmp/torch-constraint.txt \
 && pip install --constraint /tmp/torch-constraint.txt '.[wandb]' \
 && rm -rf /tmp/torch-constraint.txt /opt/utal-lightning/build \
 && python -c "import torch, lightning, utal_lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)" \
 && utal --help > /dev/null

WORKDIR /work
COPY configs ./configs
# Data are mounted at /data (read-only is fine); runs/ is written under /work/runs (mount it to keep it).
RUN mkdir -p /data /work/runs && ln -s /data /work/data
VOLUME ["/data"]

ENTRYPOINT ["utal"]
CMD ["--help"]
