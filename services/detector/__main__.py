"""`python -m services.detector`"""

from services.detector.app import main

if __name__ == "__main__":
    main()
