"""The reference ops in zoo.ops against PyTorch's, in float64, and their derivations."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

import zoo.ops as ops

DT = torch.float64
TOL = dict(atol=1e-9, rtol=0.0)


@pytest.fixture(autouse=True)
def _single_thread():
    """These tensors are tiny: one thread avoids the cost of synchronising a thread pool per op."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, **TOL)


def _leaf(*shape: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(*shape, dtype=DT, generator=gen).requires_grad_()


def _grads(out: torch.Tensor, inputs: tuple[torch.Tensor, ...], g: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(out, inputs, g)


# ------------------------------------------------------------------ output-size arithmetic
@pytest.mark.parametrize("n,f,s,p,d", [(28, 5, 1, 0, 1), (32, 5, 1, 2, 1), (224, 11, 4, 2, 1),
                                       (7, 3, 2, 1, 2), (10, 4, 3, 0, 1), (9, 3, 1, 0, 3)])
def test_output_size_formula_matches_pytorch(n, f, s, p, d):
    expected = (n + 2 * p - d * (f - 1) - 1) // s + 1
    assert ops.conv_output_size(n, f, s, p, d) == expected
    out = F.conv2d(torch.zeros(1, 1, n, n), torch.zeros(1, 1, f, f), stride=s, padding=p, dilation=d)
    assert out.shape[-1] == expected
    for op in range(max(s, d)):
        y = F.conv_transpose2d(torch.zeros(1, 1, n, n), torch.zeros(1, 1, f, f), stride=s, padding=p,
                               output_padding=op, dilation=d)
        assert ops.conv_transpose_output_size(n, f, s, p, d, op) == y.shape[-1] \
            == (n - 1) * s - 2 * p + d * (f - 1) + op + 1


# ------------------------------------------------------------------ im2col / col2im
@pytest.mark.parametrize("kernel,stride,padding,dilation",
                         [(3, 1, 0, 1), ((2, 3), (2, 1), (1, 2), (1, 2)), (3, 2, 1, 2), (1, 3, 0, 1)])
def test_im2col_col2im_match_unfold_fold_and_are_adjoint(kernel, stride, padding, dilation):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 9, 8, dtype=DT, generator=gen)
    cols = ops.im2col(x, kernel, stride, padding, dilation)
    assert torch.equal(cols, F.unfold(x, kernel, dilation, padding, stride))
    c = torch.randn(cols.shape, dtype=DT, generator=gen)
    back = ops.col2im(c, (9, 8), kernel, stride, padding, dilation)
    _close(back, F.fold(c, (9, 8), kernel, dilation, padding, stride))
    # <im2col(x), c> == <x, col2im(c)>: col2im is the transpose of the linear map im2col.
    _close((cols * c).sum(), (x * back).sum())


def test_conv2d_is_one_matrix_multiply_of_im2col():
    gen = torch.Generator().manual_seed(1)
    x, w = torch.randn(2, 3, 7, 7, dtype=DT, generator=gen), torch.randn(4, 3, 3, 3, dtype=DT, generator=gen)
    by_hand = (w.reshape(4, -1) @ ops.im2col(x, 3)).reshape(2, 4, 5, 5)  # (O, C*9) @ (B, C*9, 25)
    assert torch.equal(ops.conv2d(x, w), by_hand)


# ------------------------------------------------------------------ conv2d
CONV_GRID = list(itertools.product([1, 2, (2, 3)], [0, 1, (2, 0)], [1, 2, (2, 1)], [1, 2]))


@pytest.mark.parametrize("stride,padding,dilation,groups", CONV_GRID)
def test_conv2d_forward_and_every_gradient_match_pytorch(stride, padding, dilation, groups):
    gen = torch.Generator().manual_seed(2)
    x, w, b = _leaf(2, 4, 11, 10, gen=gen), _leaf(6, 4 // groups, 3, 2, gen=gen), _leaf(6, gen=gen)
    y = ops.conv2d(x, w, b, stride, padding, dilation, groups)
    ref = F.conv2d(x, w, b, stride, padding, dilation, groups)
    _close(y, ref)
    s, p, d = (v if isinstance(v, tuple) else (v, v) for v in (stride, padding, dilation))
    assert y.shape[-2:] == (ops.conv_output_size(11, 3, s[0], p[0], d[0]),
                            ops.conv_output_size(10, 2, s[1], p[1], d[1]))
    g = torch.randn(y.shape, dtype=DT, generator=gen)
    for mine, theirs in zip(_grads(y, (x, w, b), g), _grads(ref, (x, w, b), g)):
        _close(mine, theirs)


def test_conv2d_padding_forms_and_unbatched_input():
    gen = torch.Generator().manual_seed(3)
    x, w = torch.randn(2, 3, 8, 9, dtype=DT, generator=gen), torch.randn(5, 3, 4, 3, dtype=DT, generator=gen)
    for d in (1, 2):
        _close(ops.conv2d(x, w, padding="same", dilation=d), F.conv2d(x, w, padding="same", dilation=d))
    _close(ops.conv2d(x, w, padding="valid"), F.conv2d(x, w))
    # (top, bottom, left, right) is the same as padding the input first
    _close(ops.conv2d(x, w, padding=(1, 2, 0, 3)), F.conv2d(F.pad(x, (0, 3, 1, 2)), w))
    _close(ops.conv2d(x[0], w, stride=2), F.conv2d(x[0], w, stride=2))
    with pytest.raises(ValueError, match="strided"):
        ops.conv2d(x, w, padding="same", stride=2)


def test_conv2d_rejects_bad_shapes():
    x = torch.zeros(1, 4, 6, 6, dtype=DT)
    with pytest.raises(ValueError, match="input channels"):
        ops.conv2d(x, torch.zeros(2, 3, 3, 3, dtype=DT))
    with pytest.raises(ValueError, match="too small"):
        ops.conv2d(x, torch.zeros(2, 4, 7, 7, dtype=DT))


@pytest.mark.parametrize("stride,padding,dilation,groups", [(1, 0, 1, 1), (2, 1, 2, 2), ((1, 2), (0, 1), (2, 1), 3)])
def test_conv2d_gradcheck(stride, padding, dilation, groups):
    gen = torch.Generator().manual_seed(4)
    c = 2 * groups
    x, w, b = _leaf(1, c, 5, 4, gen=gen), _leaf(c, 2, 2, 3, gen=gen), _leaf(c, gen=gen)
    assert torch.autograd.gradcheck(
        lambda x, w, b: ops.conv2d(x, w, b, stride, padding, dilation, groups), (x, w, b))


def test_conv2d_double_backward_gradgradcheck():
    """The hand-written backward is made of differentiable ops, so second derivatives work too."""
    gen = torch.Generator().manual_seed(5)
    x, w, b = _leaf(1, 2, 5, 5, gen=gen), _leaf(2, 1, 2, 2, gen=gen), _leaf(2, gen=gen)
    assert torch.autograd.gradgradcheck(lambda x, w, b: ops.conv2d(x, w, b, 2, 1, 1, 2), (x, w, b))


def test_conv2d_forward_is_not_recorded_by_autograd():
    """The output hangs directly off Conv2dFunction: no unfold/matmul nodes for autograd to differentiate."""
    gen = torch.Generator().manual_seed(6)
    x, w, b = _leaf(1, 2, 5, 5, gen=gen), _leaf(3, 2, 3, 3, gen=gen), _leaf(3, gen=gen)
    y = ops.conv2d(x, w, b, padding=1)
    assert type(y.grad_fn).__name__ == "Conv2dFunctionBackward"
    parents = [type(fn).__name__ for fn, _ in y.grad_fn.next_functions]
    assert parents == ["AccumulateGrad"] * 3


@pytest.mark.parametrize("stride,padding,dilation", [(1, 0, 1), (2, 1, 1), (3, 2, 2), (1, 1, 3)])
def test_weight_grad_is_correlation_of_input_with_upstream_grad(stride, padding, dilation):
    """dL/dW[o,c] = x_pad[:, c] correlated with g[:, o] dilated by s, at step d, summed over the batch."""
    gen = torch.Generator().manual_seed(7)
    x, w = _leaf(3, 2, 10, 9, gen=gen), _leaf(4, 2, 3, 3, gen=gen)
    y = ops.conv2d(x, w, stride=stride, padding=padding, dilation=dilation)
    g = torch.randn(y.shape, dtype=DT, generator=gen)
    (grad_w,) = _grads(y, (w,), g)
    # batch as channels: input (C, B, H, W), "kernel" (O, B, Ho, Wo); stride and dilation swap
    corr = F.conv2d(x.detach().transpose(0, 1), g.transpose(0, 1), stride=dilation, dilation=stride,
                    padding=padding)  # (C, O, >=kh, >=kw)
    _close(grad_w, corr[:, :, :3, :3].transpose(0, 1))


@pytest.mark.parametrize("stride,padding,dilation,groups", [(1, 0, 1, 1), (2, 1, 1, 2), (3, 2, 2, 1), (2, 0, 2, 2)])
def test_input_grad_is_full_convolution_with_rotated_kernel(stride, padding, dilation, groups):
    """Zero-insert (stride), zero-pad by d(k-1) (full), correlate with the 180°-rotated kernel, crop p."""
    gen = torch.Generator().manual_seed(8)
    x, w = _leaf(2, 4, 11, 10, gen=gen), _leaf(6, 4 // groups, 3, 3, gen=gen)
    y = ops.conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    g = torch.randn(y.shape, dtype=DT, generator=gen)
    (grad_x,) = _grads(y, (x,), g)
    (expected,) = _grads(F.conv2d(x, w, None, stride, padding, dilation, groups), (x,), g)
    _close(grad_x, expected)

    # The derivation, with PyTorch's own convolution doing the arithmetic:
    ho, wo = y.shape[-2:]
    spread = g.new_zeros(2, 6, (ho - 1) * stride + 1, (wo - 1) * stride + 1)
    spread[:, :, ::stride, ::stride] = g  # undo the stride
    full = dilation * 2  # d(k-1) for k = 3
    hp, wp = 11 + 2 * padding, 10 + 2 * padding
    extra_h, extra_w = hp + full - spread.shape[-2] - 2 * full, wp + full - spread.shape[-1] - 2 * full
    spread = F.pad(spread, (full, full + extra_w, full, full + extra_h))
    rotated = w.detach().flip(-2, -1).reshape(groups, 6 // groups, 4 // groups, 3, 3).transpose(1, 2)
    by_formula = F.conv2d(spread, rotated.reshape(4, 6 // groups, 3, 3), dilation=dilation, groups=groups)
    _close(grad_x, by_formula[:, :, padding:padding + 11, padding:padding + 10])

    # ... which is the same linear map as col2im(W^T g), the backward of "im2col then matmul".
    if groups == 1:
        cols_grad = w.detach().reshape(6, -1).t() @ g.reshape(2, 6, -1)  # (B, C*k*k, L)
        _close(grad_x, ops.col2im(cols_grad, (11, 10), 3, stride, padding, dilation))


# ------------------------------------------------------------------ conv_transpose2d
TRANSPOSE_GRID = [(s, p, op, d, gr) for s, p, d, gr in itertools.product([1, 2, 3], [0, 1], [1, 2], [1, 2])
                  for op in range(max(s, d))]


@pytest.mark.parametrize("stride,padding,output_padding,dilation,groups", TRANSPOSE_GRID)
def test_conv_transpose2d_matches_pytorch(stride, padding, output_padding, dilation, groups):
    gen = torch.Generator().manual_seed(9)
    x, w, b = _leaf(2, 4, 5, 4, gen=gen), _leaf(4, 6 // groups, 3, 2, gen=gen), _leaf(6, gen=gen)
    y = ops.conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation)
    ref = F.conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation)
    _close(y, ref)
    assert y.shape[-2:] == (ops.conv_transpose_output_size(5, 3, stride, padding, dilation, output_padding),
                            ops.conv_transpose_output_size(4, 2, stride, padding, dilation, output_padding))
    g = torch.randn(y.shape, dtype=DT, generator=gen)
    for mine, theirs in zip(_grads(y, (x, w, b), g), _grads(ref, (x, w, b), g)):
        _close(mine, theirs)


@pytest.mark.parametrize("stride,padding,dilation,groups", [(1, 0, 1, 1), (2, 1, 1, 2), (3, 1, 2, 1), ((2, 1), (0, 1), (1, 2), 2)])
def test_conv_transpose2d_is_exactly_the_input_gradient_of_conv2d(stride, padding, dilation, groups):
    gen = torch.Generator().manual_seed(10)
    z, w = _leaf(2, 6, 9, 8, gen=gen), _leaf(4, 6 // groups, 3, 3, gen=gen)
    y = ops.conv2d(z, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    x = torch.randn(y.shape, dtype=DT, generator=gen)  # plays the upstream gradient
    (grad_z,) = _grads(y, (z,), x)
    s, p, d = (v if isinstance(v, tuple) else (v, v) for v in (stride, padding, dilation))
    # the output_padding that brings the transposed output back to z's size
    op = tuple(n - ops.conv_transpose_output_size(m, 3, s[a], p[a], d[a]) for a, (n, m)
               in enumerate(zip(z.shape[-2:], y.shape[-2:])))
    t = ops.conv_transpose2d(x, w, stride=stride, padding=padding, output_padding=op, groups=groups,
                             dilation=dilation)
    assert torch.equal(t, grad_z)  # bit for bit: the same code computes both
    (torch_grad_z,) = _grads(F.conv2d(z, w, None, stride, padding, dilation, groups), (z,), x)
    _close(t, torch_grad_z)


def test_conv_transpose2d_gradcheck():
    gen = torch.Generator().manual_seed(11)
    x, w, b = _leaf(1, 2, 2, 3, gen=gen), _leaf(2, 1, 3, 2, gen=gen), _leaf(2, gen=gen)
    assert torch.autograd.gradcheck(lambda x, w, b: ops.conv_transpose2d(x, w, b, 2, 1, 1, 2, 1), (x, w, b))
    assert torch.autograd.gradcheck(lambda x, w, b: ops.conv_transpose2d(x, w, b, 1, 0, 1, 2, 2), (x, w, b))


def test_conv_transpose2d_rejects_bad_output_padding():
    with pytest.raises(ValueError, match="output_padding"):
        ops.conv_transpose2d(torch.zeros(1, 2, 3, 3), torch.zeros(2, 2, 3, 3), stride=2, output_padding=2)


# ------------------------------------------------------------------ pooling
POOL_GRID = [(2, None, 0), (3, 2, 1), (3, 1, 1), ((3, 2), (1, 2), (1, 0)), (2, 3, 0), (4, 2, 2)]


@pytest.mark.parametrize("pool", ["max", "avg"])
@pytest.mark.parametrize("kernel,stride,padding", POOL_GRID)
def test_pool_forward_and_gradient_match_pytorch(pool, kernel, stride, padding):
    gen = torch.Generator().manual_seed(12)
    x = _leaf(2, 3, 9, 10, gen=gen)
    mine, theirs = (ops.max_pool2d, F.max_pool2d) if pool == "max" else (ops.avg_pool2d, F.avg_pool2d)
    y, ref = mine(x, kernel, stride, padding), theirs(x, kernel, stride, padding)
    _close(y, ref)
    k = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    s = k if stride is None else (stride if isinstance(stride, tuple) else (stride, stride))
    p = padding if isinstance(padding, tuple) else (padding, padding)
    assert y.shape[-2:] == (ops.conv_output_size(9, k[0], s[0], p[0]), ops.conv_output_size(10, k[1], s[1], p[1]))
    g = torch.randn(y.shape, dtype=DT, generator=gen)
    _close(_grads(y, (x,), g)[0], _grads(ref, (x,), g)[0])


@pytest.mark.parametrize("pool", [ops.max_pool2d, ops.avg_pool2d])
def test_pool_gradcheck(pool):
    gen = torch.Generator().manual_seed(13)
    x = _leaf(1, 2, 5, 4, gen=gen)
    assert torch.autograd.gradcheck(lambda x: pool(x, 3, 2, 1), (x,))
    assert torch.autograd.gradcheck(lambda x: pool(x, 2), (x,))


def test_max_pool_backward_is_mask_upsampling():
    """Windows that tile the image: the gradient is nearest-upsampled g times the 0/1 arg-max mask."""
    gen = torch.Generator().manual_seed(14)
    x = _leaf(2, 3, 8, 6, gen=gen)
    y = ops.max_pool2d(x, 2)
    g = torch.randn(y.shape, dtype=DT, generator=gen)
    (grad_x,) = _grads(y, (x,), g)
    up = lambda t: t.repeat_interleave(2, -2).repeat_interleave(2, -1)  # noqa: E731
    mask = (x.detach() == up(y.detach())).to(DT)
    assert mask.sum() == y.numel()  # one arg-max per window (no ties in random data)
    assert torch.equal(grad_x, up(g) * mask)


def test_max_pool_ties_go_to_the_first_maximum_like_pytorch():
    x = torch.zeros(1, 1, 4, 4, dtype=DT, requires_grad=True)  # e.g. a dead ReLU region
    x.data[0, 0, 3, 3] = -1.0
    g = torch.arange(1.0, 5.0, dtype=DT).reshape(1, 1, 2, 2)
    for kernel, stride in [(2, 2), (3, 1)]:  # both give 2x2 outputs
        gx = _grads(ops.max_pool2d(x, kernel, stride), (x,), g)[0]
        gt = _grads(F.max_pool2d(x, kernel, stride), (x,), g)[0]
        assert torch.equal(gx, gt)
        assert gx[0, 0, 0, 0] == g[0, 0, 0, 0]  # the top-left window's tie went to its first entry


def test_avg_pool_backward_is_even_spread():
    gen = torch.Generator().manual_seed(15)
    x = _leaf(2, 3, 6, 9, gen=gen)
    y = ops.avg_pool2d(x, (2, 3))
    g = torch.randn(y.shape, dtype=DT, generator=gen)
    (grad_x,) = _grads(y, (x,), g)
    _close(grad_x, g.repeat_interleave(2, -2).repeat_interleave(3, -1) / 6)


def test_pool_rejects_bad_arguments():
    x = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="half the kernel"):
        ops.max_pool2d(x, 2, 2, 2)
    with pytest.raises(ValueError, match="too small"):
        ops.avg_pool2d(x, 5)


# ------------------------------------------------------------------ LeNet-5 on the reference ops
def _graph_ops(out: torch.Tensor) -> list[str]:
    """Names of every autograd node behind ``out``."""
    seen, stack, names = set(), [out.grad_fn], []
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.append(type(fn).__name__)
        stack.extend(nxt for nxt, _ in fn.next_functions)
    return names


@pytest.mark.parametrize("name,convs,pool", [("lenet5", 5, "AvgPool2dFunctionBackward"),
                                             ("lenet5_modern", 3, "MaxPool2dFunctionBackward")])
def test_lenet5_reference_ops_match_native(name, convs, pool):
    """Same weights, float64: conv_impl='reference' gives native's logits and every gradient."""
    import zoo

    torch.manual_seed(0)
    native = zoo.create_model(name, num_classes=10, conv_impl="native").to(DT)
    reference = zoo.create_model(name, num_classes=10, conv_impl="reference").to(DT)
    reference.load_state_dict(native.state_dict())
    gen = torch.Generator().manual_seed(16)
    x = torch.randn(3, 1, 32, 32, dtype=DT, generator=gen)
    target = torch.tensor([1, 7, 3])
    results = []
    for model in (native, reference):
        xi = x.clone().requires_grad_()
        logits = model(xi)
        params = [p for _, p in sorted(model.named_parameters())]
        grads = torch.autograd.grad(F.cross_entropy(logits, target), [xi, *params])
        results.append((logits, grads, _graph_ops(logits)))
    (ln, gn, ops_n), (lr, gr, ops_r) = results
    # every convolution (C3's table: one grouped conv per fan-in) and both pools ran through zoo.ops
    assert ops_r.count("Conv2dFunctionBackward") == convs and ops_r.count(pool) == 2
    assert not any(op.endswith("FunctionBackward") for op in ops_n)
    _close(lr, ln)
    assert len(gr) == len(gn) > 1
    for mine, theirs in zip(gr, gn):
        _close(mine, theirs)
