"""Demonstrations that ganscope's pieces reproduce results of GAN theory.

`optimal_d`: a discriminator trained against a fixed generator converges to
D* = p_data / (p_data + p_g), and the game's value there is -log 4 + 2 JSD.
"""
