"""How quality is measured: reconstruction (PSNR, SSIM, codebook use), image grids."""
