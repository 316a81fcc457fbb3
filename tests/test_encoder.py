import pytest
import torch

from musimilar.encoder import ContrastiveModel, ConvBlock, Encoder, ProjectionHead
from musimilar.settings import SIZE_CHANNELS, ModelSettings

TINY = ModelSettings(channels=(4, 8, 16), projection_dim=8)


def log_mel(size: int = 2, n_mels: int = 16, frames: int = 16, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return -40.0 + 10.0 * torch.randn(size, n_mels, frames, generator=generator)  # [B, n_mels, T]


@pytest.mark.parametrize("size", list(SIZE_CHANNELS))
def test_each_preset_gives_its_embedding_dim(size: str) -> None:
    settings = ModelSettings(size=size)
    encoder = Encoder(settings)
    assert encoder(log_mel()).shape == (2, settings.embedding_dim)
    assert settings.embedding_dim == SIZE_CHANNELS[size][-1]


@pytest.mark.parametrize("frames", [16, 17, 33, 100])
def test_any_length_gives_the_same_dim(frames: int) -> None:
    assert Encoder(TINY)(log_mel(frames=frames, n_mels=24)).shape == (2, 16)


def test_short_input_passes_the_deepest_preset() -> None:
    encoder = Encoder(ModelSettings(size="large")).eval()
    assert torch.isfinite(encoder(log_mel(size=1))).all()


def test_conv_block_halves_rounding_up() -> None:
    block = ConvBlock(1, 4, dropout=0.0)
    assert block(torch.randn(2, 1, 16, 9)).shape == (2, 4, 8, 5)
    assert block(torch.randn(2, 1, 1, 1)).shape == (2, 4, 1, 1)


def test_embed_gives_unit_length_projections() -> None:
    model = ContrastiveModel(TINY).eval()
    embeddings = model.embed(log_mel(size=4))
    assert embeddings.shape == (4, TINY.projection_dim) and model.output_dim == TINY.projection_dim
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(embeddings, torch.nn.functional.normalize(model(log_mel(size=4))[1], dim=1))


def test_without_projection_the_encoder_output_is_the_vector() -> None:
    model = ContrastiveModel(TINY, projection=False).eval()
    assert model.output_dim == TINY.embedding_dim
    expected = torch.nn.functional.normalize(model.encoder(log_mel(size=4)), dim=1)
    torch.testing.assert_close(model.embed(log_mel(size=4)), expected)


def test_eval_mode_is_deterministic_and_independent_of_the_batch() -> None:
    encoder = Encoder(TINY)
    encoder(log_mel(size=8, seed=1))  # one training step moves the running statistics
    encoder.eval()
    batch = log_mel(size=4, seed=2)
    torch.testing.assert_close(encoder(batch), encoder(batch), rtol=0, atol=0)
    torch.testing.assert_close(encoder(batch[:1]), encoder(batch)[:1])


def test_train_mode_uses_dropout() -> None:
    encoder = Encoder(ModelSettings(channels=(4, 8), dropout=0.5)).train()
    torch.manual_seed(0)
    batch = log_mel(size=4)
    assert not torch.equal(encoder(batch), encoder(batch))


def test_channels_last_gives_the_same_embedding() -> None:
    encoder = Encoder(TINY).eval()
    batch = log_mel(size=3, frames=40)
    expected = encoder(batch)
    torch.testing.assert_close(encoder.to(memory_format=torch.channels_last)(batch), expected)


def test_initialisation() -> None:
    encoder = Encoder(TINY)
    block = encoder.blocks[0]
    assert torch.equal(block.norm.weight, torch.ones(4)) and torch.equal(block.norm.bias, torch.zeros(4))
    assert block.conv.bias is None
    conv = encoder.blocks[2].conv.weight  # [16, 8, 3, 3]
    fan_out = 16 * 3 * 3  # kaiming normal in fan_out mode: std = sqrt(2 / fan_out)
    assert abs(conv.std().item() - (2 / fan_out) ** 0.5) < 0.01


def test_projection_head_dims() -> None:
    head = ProjectionHead(16, 8)
    assert head(torch.randn(4, 16)).shape == (4, 8)
    wide = ProjectionHead(16, 8, hidden_dim=32)
    assert wide[0].out_features == 32 and wide(torch.randn(4, 16)).shape == (4, 8)


def test_contrastive_model_returns_embedding_and_projection() -> None:
    model = ContrastiveModel(TINY)
    h, z = model(log_mel(size=4))
    assert h.shape == (4, TINY.embedding_dim)
    assert z.shape == (4, TINY.projection_dim)
    model.eval()
    torch.testing.assert_close(model(log_mel(size=4))[0], model.encoder(log_mel(size=4)))


def test_model_files_naming_retired_pooling_variants_load_only_with_todays_behaviour() -> None:
    written_then = {"channels": [8, 16, 32], "pooling": "meanmax", "levels": 1}
    assert ModelSettings.model_validate(written_then) == ModelSettings(channels=(8, 16, 32))
    for key, value in (("pooling", "meanstd"), ("levels", 2)):
        with pytest.raises(ValueError, match=f"{key} = .* is no longer available"):
            ModelSettings.model_validate({**written_then, key: value})
