"""proxy-lab: will an office postage meter's traffic survive this corporate proxy, and if not, why?"""

__version__ = "0.1.0"
